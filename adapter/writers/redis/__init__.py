"""The Redis writer: caches rows as hashes, JSON or string values under templated keys."""
