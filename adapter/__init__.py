"""canal-py: a Python re-implementation of Alibaba Canal (binlog server and sync adapter).

The package holds two programs: ``canal-server`` (``adapter.server``) and ``canal-adapter``
(``adapter.node``). Leaves: ``protocol``, ``coordination``, ``client``, ``writers``.
"""

__version__ = "0.1.0"
