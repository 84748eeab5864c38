"""ZooKeeper coordination primitives: canal's paths and running election, sessions, switch, ETL lock, leases.

A leaf package: it depends only on kazoo and ``adapter.errors``.
"""
