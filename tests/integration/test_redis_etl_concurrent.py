"""Redis ETL while a lagging stream keeps changing rows (writer level): the final keys equal the source.

A producer commits changes (updates, deletes, inserts, key changes, a few joined-table updates that
touch ~1000 keys each) and queues their Dmls; an applier thread writes them in batches, behind the
source, as a real pipeline would.
The ETL runs meanwhile. The sync lock around each stream batch and each ETL page makes the end exact.
"""

from __future__ import annotations

import pathlib
import queue
import random
import sys
import threading
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from redis_support import Source, actual_state, expected_state, load, make_writer, redis_client

from adapter.dml import Dml
from adapter.writers.base import EtlResult, Routed

ROWS = 20000


def test_etl_during_lagging_stream_ends_consistent(mysql_conn: Any, mysql_db: str, redis_prefix: str) -> None:
    src = Source(mysql_conn, mysql_db)
    src.execute("CREATE TABLE role (id INT PRIMARY KEY, name VARCHAR(50))")
    src.execute("CREATE TABLE user (id INT PRIMARY KEY, name VARCHAR(50), role_id INT, KEY (role_id))")
    src.execute("INSERT INTO role VALUES " + ",".join(f"({i},'r{i}')" for i in range(20)))
    for start in range(1, ROWS + 1, 5000):
        src.execute("INSERT INTO user VALUES " + ",".join(f"({i},'u{i}',{i % 20})" for i in range(start, start + 5000)))
    w = make_writer(mysql_db)
    maps = [
        load(mysql_db, "h.yml", {"sql": "select a.id, a.name, b.name as role from user a "
                                        "left join role b on b.id = a.role_id",
                                 "key": "h:{id}", "prefix": redis_prefix, "commitBatch": 500}),
        load(mysql_db, "s.yml", {"sql": "select a.id, a.name from user a", "key": "s:{id}", "type": "string",
                                 "prefix": redis_prefix, "commitBatch": 700}),
    ]
    pending: queue.Queue[Dml | None] = queue.Queue()
    errors: list[BaseException] = []

    def applier() -> None:
        try:
            while True:
                batch = [pending.get()]
                while len(batch) < 40 and not pending.empty():
                    batch.append(pending.get())
                items = [Routed(m, d) for d in batch if d is not None for m in maps
                         if m.sql.tables_for(d.database, d.table)]
                w.write(items)
                if batch[-1] is None:
                    return
        except BaseException as e:
            errors.append(e)

    results: list[EtlResult] = []

    def etl() -> None:
        for m in maps:
            results.append(w.etl(m, [], lambda n: None))

    threads = [threading.Thread(target=applier), threading.Thread(target=etl)]
    for t in threads:
        t.start()
    rnd = random.Random(11)
    next_id = ROWS + 1
    changes = 0
    while threads[1].is_alive() or changes < 300:
        op = rnd.random()
        k = rnd.randint(1, ROWS)
        live = src.rows("user", "id = %s", [k])
        if op < 0.45 and live:
            d = src.update("user", k, name=f"v{changes}", role_id=rnd.randint(0, 25))
        elif op < 0.6 and live:
            d = src.delete("user", k)
        elif op < 0.7 and live:
            d = src.update("user", k, id=next_id)  # key change
            next_id += 1
        elif op < 0.97:
            d = src.insert("user", id=next_id, name="new", role_id=rnd.randint(0, 19))
            next_id += 1
        else:
            d = src.update("role", rnd.randint(0, 19), name=f"r-{changes}")
        pending.put(d)
        changes += 1
        time.sleep(0.002)  # a busy but not saturating source: the ETL must finish while it runs
    pending.put(None)
    for t in threads:
        t.join(600)
    assert not errors, errors
    assert len(results) == 2 and all(r.succeeded for r in results), results
    r = redis_client()
    for m in maps:
        want = expected_state(w, m)
        assert actual_state(r, m) == want, m.name
        assert w.count(m) == len(want) == len(src.rows("user", "1 = 1"))
    w.close()
