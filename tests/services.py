"""Where the test services listen (scripts/services.sh) and how to probe them."""

from __future__ import annotations

import os
import socket

MARIADB = {"host": "127.0.0.1", "port": int(os.environ.get("MARIADB_PORT", "13306"))}
MARIADB_ROOT = {**MARIADB, "user": "app", "password": "apppass"}
MARIADB_REPL = {**MARIADB, "user": "canal", "password": "canal"}
ZK_HOSTS = os.environ.get("ZK_HOSTS", "127.0.0.1:12181")
ZK_ENSEMBLE_HOSTS = os.environ.get("ZK_ENSEMBLE_HOSTS", "127.0.0.1:22181,127.0.0.1:22182,127.0.0.1:22183")
REDIS = {"host": "127.0.0.1", "port": int(os.environ.get("REDIS_PORT", "16379"))}
PG_URL = os.environ.get("PG_URL", "postgresql+psycopg://postgres@127.0.0.1:15432/postgres")
ES_URL = os.environ.get("ES_URL", "http://127.0.0.1:19201")
SERVICES_DIR = os.environ.get(
    "SERVICES_DIR", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".services")
)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def first_hostport(hosts: str) -> tuple[str, int]:
    host, _, port = hosts.split(",")[0].partition(":")
    return host, int(port)


def _compat_root() -> str:
    """canal's sample configs (shared/compat/canal): $CANAL_COMPAT_DIR, else ../shared next to the project."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sibling = os.path.join(os.path.dirname(here), "shared", "compat", "canal")
    for cand in (os.environ.get("CANAL_COMPAT_DIR", ""), sibling, "/work/shared/compat/canal"):
        if cand and os.path.isdir(cand):
            return cand
    return os.path.join(os.path.dirname(here), "shared", "compat", "canal")


#: canal's own sample files, which the project must load unchanged.
COMPAT = _compat_root()
