"""Importing and running the parser must not change what other python-mysql-replication readers see."""

from __future__ import annotations

from typing import Any


def test_other_library_readers_still_get_their_rows(mysql_conn: Any, mysql_db: str,
                                                    mysql_settings: dict[str, Any]) -> None:
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import WriteRowsEvent

    import adapter.server.binlog.stream  # noqa: F401  (installs the scoped TABLE_MAP cache)

    with mysql_conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        log_file, log_pos = cur.fetchone()[:2]
        cur.execute("CREATE TABLE iso (id INT PRIMARY KEY, name VARCHAR(20))")
        cur.execute("INSERT INTO iso VALUES (1, 'a'), (2, 'b')")
    stream = BinLogStreamReader(
        connection_settings=dict(mysql_settings), server_id=9101, blocking=False, resume_stream=True,
        log_file=log_file, log_pos=log_pos, only_events=[WriteRowsEvent], only_schemas=[mysql_db],
    )
    rows = [row["values"] for ev in stream for row in ev.rows]
    stream.close()
    assert rows == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
