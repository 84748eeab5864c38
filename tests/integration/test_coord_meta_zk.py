"""ZkMetaManager on real ZooKeeper: canal's node layout and exact cursor JSON, flush rules, reload."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.coordination import paths
from adapter.errors import FatalError
from adapter.server.contracts import ClientIdentity
from adapter.server.events import LogPosition, SourceAddress
from adapter.server.meta_zk import ZkMetaManager

sys.path.insert(0, str(Path(__file__).parent))
from test_coord_support import wait_for

CANAL_CURSOR = (
    b'{"@type":"com.alibaba.otter.canal.protocol.position.LogPosition",'
    b'"identity":{"slaveId":-1,"sourceAddress":{"address":"127.0.0.1","port":3306}},'
    b'"postion":{"gtid":"","included":false,"journalName":"mysql-bin.000004","position":13885,'
    b'"serverId":1,"timestamp":1591600659000}}'
)
POS = LogPosition("mysql-bin.000004", 13885, server_id=1, timestamp=1591600659000)
SOURCES = {"example": SourceAddress("127.0.0.1", 3306)}
C1001 = ClientIdentity("example", 1001)


@pytest.fixture(params=["standalone", "ensemble"])
def zkc(request: pytest.FixtureRequest) -> Iterator[Any]:
    from kazoo.client import KazooClient

    hosts = request.getfixturevalue("zk_chroot" if request.param == "standalone" else "zk_ensemble_chroot")
    c = KazooClient(hosts=hosts, timeout=4)
    c.start(10)
    yield c
    c.stop()
    c.close()


def test_round_trip_with_canal_cursor_json(zkc: Any) -> None:
    meta = ZkMetaManager(zkc, SOURCES, flush_period_ms=60_000)
    meta.start()
    meta.subscribe(C1001)
    assert zkc.exists(paths.client_node("example", 1001))
    assert zkc.exists(paths.client_filter("example", 1001)) is None  # empty filter: no node
    meta.update_cursor(C1001, POS)
    assert zkc.exists(paths.client_cursor("example", 1001)) is None  # not before the flush
    meta.flush()
    data, _ = zkc.get(paths.client_cursor("example", 1001))
    assert data == CANAL_CURSOR
    assert next(iter(json.loads(data))) == "@type"
    meta.stop()

    again = ZkMetaManager(zkc, SOURCES, flush_period_ms=60_000)
    again.start()
    assert again.list_subscribed("example") == [C1001]
    assert again.get_cursor(C1001) == POS
    assert again.get_cursor(ClientIdentity("example", 1002)) is None
    again.stop()


def test_reads_a_cursor_written_by_java_canal_and_ignores_non_client_children(zkc: Any) -> None:
    zkc.create(paths.client_cursor("example", 1001), CANAL_CURSOR, makepath=True)
    zkc.create(paths.client_filter("example", 1001), b"mytest\\..*", makepath=True)
    zkc.create(
        paths.client_cursor("example", 1002),
        CANAL_CURSOR.replace(b'"@type":"com.alibaba.otter.canal.protocol.position.LogPosition",', b""),
        makepath=True,
    )
    zkc.create(paths.destination_cluster_node("example", "1.1.1.1:11111"), makepath=True)
    zkc.create(paths.server_running("example"), paths.ServerRunningData("1.1.1.1:11111").to_json())
    meta = ZkMetaManager(zkc, SOURCES, flush_period_ms=0)
    meta.start()
    subs = meta.list_subscribed("example")
    assert [c.client_id for c in subs] == [1001, 1002]
    assert subs[0].filter == "mytest\\..*"
    assert meta.get_cursor(C1001) == POS
    assert meta.get_cursor(ClientIdentity("example", 1002)) == POS
    meta.stop()


def test_periodic_flush_and_flush_on_stop(zkc: Any) -> None:
    meta = ZkMetaManager(zkc, SOURCES, flush_period_ms=100)
    meta.start()
    meta.subscribe(C1001)
    meta.update_cursor(C1001, POS)
    path = paths.client_cursor("example", 1001)
    wait_for(lambda: zkc.exists(path), what="periodic flush")
    meta.stop()

    slow = ZkMetaManager(zkc, SOURCES, flush_period_ms=3_600_000)  # no periodic flush within the test
    slow.start()
    later = LogPosition("mysql-bin.000005", 4, server_id=1, timestamp=1591600660000, gtid="0-1-9")
    slow.update_cursor(C1001, later)
    assert zkc.get(path)[0] == CANAL_CURSOR
    slow.stop()  # canal would lose this ack; we flush it
    data, _ = zkc.get(path)
    assert json.loads(data)["postion"]["journalName"] == "mysql-bin.000005"
    assert json.loads(data)["postion"]["gtid"] == "0-1-9"


def test_filter_node_follows_the_subscription_and_unsubscribe_deletes_the_subtree(zkc: Any) -> None:
    meta = ZkMetaManager(zkc, SOURCES, flush_period_ms=0)
    meta.start()
    meta.subscribe(ClientIdentity("example", 1001, "a\\.b"))
    assert zkc.get(paths.client_filter("example", 1001))[0] == b"a\\.b"
    meta.subscribe(ClientIdentity("example", 1001, ""))
    assert zkc.exists(paths.client_filter("example", 1001)) is None
    meta.update_cursor(C1001, POS)  # write-through with period 0
    assert zkc.get(paths.client_cursor("example", 1001))[0] == CANAL_CURSOR
    zkc.create(paths.client_running("example", 1001), b"{}", ephemeral=True)
    meta.unsubscribe(C1001)
    assert zkc.exists(paths.client_node("example", 1001)) is None
    assert not meta.has_subscribe(C1001)
    assert zkc.exists(paths.destination("example"))
    meta.stop()


def test_unreadable_cursor_is_an_error_naming_the_node(zkc: Any) -> None:
    zkc.create(paths.client_cursor("example", 1001), b'{"postion":', makepath=True)
    meta = ZkMetaManager(zkc, SOURCES, flush_period_ms=0)
    meta.start()
    with pytest.raises(FatalError, match="/otter/canal/destinations/example/1001/cursor"):
        meta.get_cursor(C1001)
    meta.stop()


def test_refresh_picks_up_another_runners_cursor_but_keeps_unflushed_ones(zkc: Any) -> None:
    mine = ZkMetaManager(zkc, SOURCES, flush_period_ms=60_000)
    mine.start()
    mine.subscribe(C1001)
    other = ZkMetaManager(zkc, SOURCES, flush_period_ms=0)
    other.start()
    other.update_cursor(C1001, POS)  # the previous runner acked while we were standby
    assert mine.get_cursor(C1001) is None
    mine.refresh("example")
    assert mine.get_cursor(C1001) == POS
    newer = LogPosition("mysql-bin.000009", 4)
    c1002 = ClientIdentity("example", 1002)
    mine.update_cursor(c1002, newer)  # ours, not yet flushed
    mine.refresh("example")
    assert mine.get_cursor(c1002) == newer
    other.stop()
    mine.stop()
