"""The rdb writer: canal's RDB adapter (dbMapping files) for MySQL/MariaDB, PostgreSQL and SQLite targets."""

from adapter.writers.rdb.mapping import RdbMapping, parse_rdb_mapping
from adapter.writers.rdb.writer import RdbWriter

__all__ = ["RdbMapping", "RdbWriter", "parse_rdb_mapping"]
