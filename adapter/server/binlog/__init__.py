"""The binlog parser of canal-server: MySQL/MariaDB row binlog → canal Entries in the event store.

``BinlogParser(settings, sink).start(resume_from)`` runs the parser thread; ``check_source``
verifies that a source can be parsed (ROW format, FULL row image, FULL row metadata, privileges).
"""

from adapter.server.binlog.convert import ParserStats
from adapter.server.binlog.filter import RegexFilter, TableFilter
from adapter.server.binlog.reader import BinlogParser
from adapter.server.binlog.source import check_source

__all__ = ["BinlogParser", "ParserStats", "RegexFilter", "TableFilter", "check_source"]
