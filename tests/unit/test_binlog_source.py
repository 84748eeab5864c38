"""check_source messages, error classification and the source time zone (fake control connection)."""

from __future__ import annotations

import datetime
from typing import Any

import pymysql
import pytest

from adapter.errors import ConfigError, RetriableError
from adapter.server.binlog.source import check_source, is_retriable, server_timezone
from adapter.server.events import ParserSettings

GOOD = {
    "log_bin": "1", "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL",
    "log_bin_compress": "0",
}
GRANTS = ["GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `canal`@`%`"]


class Conn:
    def __init__(self, variables: dict[str, str | None], grants: list[str], status: bool = True,
                 tz: tuple[str, str, int] = ("SYSTEM", "UTC", 0)) -> None:
        self.variables, self.grants, self.status, self.tz = variables, grants, status, tz
        self.closed = False

    def cursor(self) -> Cur:
        return Cur(self)

    def close(self) -> None:
        self.closed = True


class Cur:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.rows: list[tuple[Any, ...]] = []

    def __enter__(self) -> Cur:
        return self

    def __exit__(self, *a: object) -> None:
        pass

    def execute(self, sql: str, *a: object) -> None:
        if sql.startswith("SELECT @@GLOBAL.time_zone"):
            self.rows = [self.conn.tz]
        elif sql.startswith("SELECT @@GLOBAL."):
            name = sql.rsplit(".", 1)[1]
            if name not in self.conn.variables:
                raise pymysql.err.OperationalError(1193, f"Unknown system variable '{name}'")
            self.rows = [(self.conn.variables[name],)]
        elif sql.startswith("SELECT VERSION()"):
            self.rows = [("10.11.19-MariaDB",)]
        elif sql.startswith("SHOW GRANTS"):
            self.rows = [(g,) for g in self.conn.grants]
        elif sql == "SHOW MASTER STATUS":
            if not self.conn.status:
                raise pymysql.err.OperationalError(1227, "Access denied; you need BINLOG MONITOR")
            self.rows = [("mysql-bin.000001", 4)]
        else:
            raise AssertionError(sql)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


SETTINGS = ParserSettings(destination="d", master_host="db", master_port=3306, username="canal", password="secret",
                          slave_id=1)


def check(variables: dict[str, str | None], grants: list[str] = GRANTS, status: bool = True) -> None:
    conn = Conn(variables, grants, status)
    check_source(SETTINGS, lambda **kw: conn)
    assert conn.closed


def test_a_good_source_passes() -> None:
    check(GOOD)
    check({**GOOD, "log_bin": "ON"}, ["GRANT ALL PRIVILEGES ON *.* TO `app`@`%` WITH GRANT OPTION"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"log_bin": "0"}, "log_bin"),
        ({"binlog_format": "MIXED"}, "SET GLOBAL binlog_format=ROW"),
        ({"binlog_row_image": "MINIMAL"}, "SET GLOBAL binlog_row_image=FULL"),
        ({"binlog_row_metadata": "MINIMAL"}, "SET GLOBAL binlog_row_metadata=FULL"),
        ({"log_bin_compress": "1"}, "log_bin_compress=OFF"),
    ],
)
def test_bad_settings_say_how_to_fix(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check({**GOOD, **change})


def test_old_server_without_row_metadata() -> None:
    variables = {k: v for k, v in GOOD.items() if k != "binlog_row_metadata"}
    with pytest.raises(ConfigError, match=r"MariaDB >= 10\.5"):
        check(variables)


def test_missing_privileges() -> None:
    with pytest.raises(ConfigError, match="REPLICATION SLAVE"):
        check(GOOD, ["GRANT SELECT, REPLICATION SLAVE ADMIN ON *.* TO `canal`@`%`"])
    with pytest.raises(ConfigError, match="BINLOG MONITOR"):
        check(GOOD, status=False)
    check(GOOD, ["GRANT USAGE ON *.* TO `canal`@`%`", "GRANT `repl_role` TO `canal`@`%`"])  # roles: not refused


def test_login_and_network_failures() -> None:
    def denied(**kw: object) -> Conn:
        raise pymysql.err.OperationalError(1045, "Access denied for user 'canal'")

    with pytest.raises(ConfigError, match="dbPassword") as err:
        check_source(SETTINGS, denied)
    assert "secret" not in str(err.value)

    def down(**kw: object) -> Conn:
        raise pymysql.err.OperationalError(2003, "Can't connect to MySQL server")

    with pytest.raises(RetriableError):
        check_source(SETTINGS, down)


def test_error_classification() -> None:
    assert is_retriable(pymysql.err.OperationalError(2013, "Lost connection"))
    assert is_retriable(pymysql.err.InterfaceError(0, ""))
    assert is_retriable(ConnectionResetError())
    assert is_retriable(TimeoutError())
    assert not is_retriable(pymysql.err.OperationalError(1236, "binlog purged"))
    assert not is_retriable(pymysql.err.OperationalError(1045, "denied"))
    assert not is_retriable(ValueError("bug"))


@pytest.mark.parametrize(
    ("row", "offset"),
    [(("SYSTEM", "UTC", 0), 0), (("+08:00", "UTC", 28800), 8 * 3600), (("-03:30", "UTC", -12600), -12600),
     (("Asia/Shanghai", "UTC", 28800), 8 * 3600), (("SYSTEM", "XYZ", 3600), 3600)],
)
def test_server_timezone(row: tuple[str, str, int], offset: int) -> None:
    tz = server_timezone(Conn(GOOD, GRANTS, tz=row))
    assert tz.utcoffset(datetime.datetime(2024, 1, 1)) == datetime.timedelta(seconds=offset)
