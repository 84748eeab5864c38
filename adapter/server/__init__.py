"""canal-server: the binlog server that serves canal's TCP protocol."""
