"""Elasticsearch writers (entry points ``es6``, ``es7``, ``es8``); see docs/writers/es.md."""

from adapter.writers.es.config import EsMapping, EsSettings, parse_es_mapping, parse_settings
from adapter.writers.es.writer import Es6Writer, Es7Writer, Es8Writer, EsWriter

__all__ = ["Es6Writer", "Es7Writer", "Es8Writer", "EsMapping", "EsSettings", "EsWriter", "parse_es_mapping",
           "parse_settings"]
