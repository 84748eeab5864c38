"""canal clients: the TCP connector (tcp.py) and ZooKeeper-based server discovery (cluster.py)."""
