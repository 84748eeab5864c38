"""Translation of canal's JDBC URLs (and plain SQLAlchemy URLs) into SQLAlchemy URLs.

Shared by the adapter configuration (``srcDataSources``) and the rdb writer (``jdbc.url``), so that
one rule decides what a canal URL means everywhere.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from sqlalchemy.engine import URL, make_url

from adapter.errors import ConfigError

_JDBC = re.compile(r"^jdbc:(?P<kind>mysql|mariadb|postgresql)://(?P<hosts>[^/?;]*)(?:/(?P<db>[^?;]*))?(?:[?;](?P<q>.*))?$")
_DRIVERS = {"mysql": "mysql+pymysql", "mariadb": "mysql+pymysql", "postgresql": "postgresql+psycopg"}


def jdbc_to_url(url: str, username: str | None = None, password: str | None = None, *,
                source: str | None = None, key: str = "jdbc.url") -> URL:
    """canal JDBC URL (mysql, mariadb, postgresql, sqlite) or SQLAlchemy URL + credentials → ``URL``.

    Explicit credentials win over ones in the URL. JDBC-only options (useUnicode, useSSL,
    serverTimezone...) mean nothing to Python drivers and are dropped; ``characterEncoding`` maps to
    the MySQL charset (utf8 → utf8mb4, so emoji survive).
    """
    url = url.strip()
    if url.startswith("jdbc:sqlite:"):
        path = url[len("jdbc:sqlite:"):]
        return URL.create("sqlite", database=None if path in ("", ":memory:") else path)
    m = _JDBC.match(url)
    if m:
        hosts = m["hosts"]
        if "," in hosts:
            raise ConfigError("expected a single host in the JDBC URL (failover lists are not supported)",
                              source=source, key=key)
        host, _, port = hosts.partition(":")
        if port and not port.isdigit():
            raise ConfigError(f"expected a numeric port in the JDBC URL, got {port!r}", source=source, key=key)
        driver = _DRIVERS[m["kind"]]
        query: dict[str, str] = {"charset": "utf8mb4"} if driver.startswith("mysql") else {}
        q = dict(parse_qsl((m["q"] or "").replace(";", "&")))
        enc = q.get("characterEncoding")
        if enc and driver.startswith("mysql"):
            query["charset"] = "utf8mb4" if enc.lower().replace("-", "") in ("utf8", "utf8mb4") else enc
        # credentials may ride in the query string (user=, password=)
        username = username or q.get("user") or None
        password = password or q.get("password") or None
        return URL.create(driver, username=username, password=password, host=host or None,
                          port=int(port) if port else None, database=m["db"] or None, query=query)
    if url.startswith("jdbc:"):
        raise ConfigError("expected jdbc:mysql://, jdbc:mariadb://, jdbc:postgresql://, jdbc:sqlite: or a SQLAlchemy "
                          f"URL, got {url.split('//')[0]!r}", source=source, key=key)
    try:
        u = make_url(url)
    except Exception as e:  # sqlalchemy's ArgumentError text says what is wrong
        raise ConfigError(f"expected a JDBC or SQLAlchemy URL: {e}", source=source, key=key) from e
    if username and not u.username:
        u = u.set(username=username)
    if password and not u.password:
        u = u.set(password=password)
    return u
