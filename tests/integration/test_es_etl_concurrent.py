"""ETL while the stream keeps changing rows (writer level): the final index equals the source.

The stream side commits a change and then writes its Dml (as a caught-up pipeline would); the ETL
runs in another thread. The writer lock around each stream batch and each ETL page is what makes
the result exact.
"""

from __future__ import annotations

import pathlib
import random
import sys
import threading
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from es_support import Source, assert_synced, context, load, make_writer, write

from adapter.writers.base import EtlResult
from adapter.writers.es import Es7Writer

ROWS = 20000


def test_etl_during_stream_changes_ends_consistent(mysql_conn: Any, mysql_db: str, es_url: str,
                                                    es_index_prefix: str) -> None:
    src = Source(mysql_conn, mysql_db)
    src.execute("CREATE TABLE role (id INT PRIMARY KEY, role_name VARCHAR(50))")
    src.execute("CREATE TABLE user (id INT PRIMARY KEY, name VARCHAR(50), role_id INT, KEY (role_id))")
    src.execute("INSERT INTO role VALUES " + ",".join(f"({i},'r{i}')" for i in range(20)))
    for start in range(1, ROWS + 1, 5000):
        src.execute("INSERT INTO user VALUES " + ",".join(f"({i},'u{i}',{i % 20})" for i in range(start, start + 5000)))
    ctx = context(mysql_db)
    w = make_writer(Es7Writer, es_url, ctx)
    m = load(Es7Writer, ctx, {"_index": es_index_prefix + "etlc", "_id": "_id", "commitBatch": 500,
                              "sql": "select a.id as _id, a.name, a.role_id, b.role_name from user a "
                                     "left join role b on b.id = a.role_id"})
    result: list[EtlResult] = []
    etl = threading.Thread(target=lambda: result.append(w.etl(m, [], lambda n: None)))  # type: ignore[attr-defined]
    etl.start()
    rnd = random.Random(7)
    next_id = ROWS + 1
    changes = 0
    while etl.is_alive() or changes < 50:
        op = rnd.random()
        k = rnd.randint(1, ROWS)
        if op < 0.5:
            d = src.update("user", f"name='v{changes}', role_id={rnd.randint(0, 25)}", f"id={k}")
        elif op < 0.65:
            d = src.delete("user", f"id={k}")
        elif op < 0.8:
            d = src.insert("user", f"({next_id},'new',{rnd.randint(0, 19)})", f"id={next_id}")
            next_id += 1
        else:
            r = rnd.randint(0, 19)
            d = src.update("role", f"role_name='r{r}-{changes}'", f"id={r}")
        if d.data:
            write(w, m, d)
        changes += 1
    etl.join()
    assert result and result[0].succeeded, result
    assert_synced(w, m)
    w.client.refresh(m.index)
    assert w.count(m) == len(src.rows("user"))
    w.close()
