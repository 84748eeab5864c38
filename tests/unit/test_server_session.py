"""canal-server over real localhost sockets with a fake parser: protocol flows, errors, auth, lifecycle."""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_fakes import FakeParser, make_conf, start_server, transaction

from adapter.client.tcp import CanalClient
from adapter.errors import ProtocolError, RetriableError
from adapter.protocol import CanalProtocol_pb2 as pb
from adapter.protocol import codec, scramble
from adapter.server.runtime import CanalServer


@pytest.fixture(autouse=True)
def _reset() -> None:
    FakeParser.made.clear()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CanalServer]:
    srv, _ = start_server(make_conf(tmp_path, instance_extra="canal.instance.memory.batch.mode = ITEMSIZE"))
    yield srv
    srv.stop()


def client(srv: CanalServer, **kw: object) -> CanalClient:
    return CanalClient("127.0.0.1", srv.port, destination="example", so_timeout=30, **kw)  # type: ignore[arg-type]


def parser() -> FakeParser:
    return FakeParser.made[-1]


class Raw:
    """A hand-driven connection for byte-level tests."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        hs = codec.read_packet(self.sock)
        assert hs.type == pb.HANDSHAKE and hs.version == 1
        self.seed = codec.decode_body(hs.body, pb.Handshake).seeds
        assert len(self.seed) == 8

    def send(self, ptype: int, body: bytes = b"") -> None:
        codec.write_frame(self.sock, pb.Packet(type=ptype, body=body).SerializeToString())  # type: ignore[arg-type]

    def read(self) -> pb.Packet:
        return codec.read_packet(self.sock)

    def ack(self) -> pb.Ack:
        p = self.read()
        assert p.type == pb.ACK and p.version == 1
        return codec.decode_body(p.body, pb.Ack)

    def auth(self) -> None:
        self.send(pb.CLIENTAUTHENTICATION)  # canal-python: empty body, no version
        assert self.ack().error_code == 0

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------- happy paths
def test_subscribe_get_ack_with_our_client(server: CanalServer) -> None:
    with client(server) as c:
        c.connect()
        assert c.get_without_ack(10) == (-1, [])
        parser().emit(transaction(100, 2))
        batch_id, entries = c.get_without_ack(2)
        assert batch_id == 1 and [e.header.logfileOffset for e in entries] == [100, 150]
        batch_id2, entries = c.get_without_ack(10)
        assert batch_id2 == 2 and len(entries) == 1
        c.ack(batch_id)
        c.ack(batch_id2)
        assert c.get_without_ack(10) == (-1, [])
    inst = server.embedded.instance("example")  # type: ignore[union-attr]
    assert inst is not None and inst.store is not None and inst.store.fill() == (0, 0)


def test_rollback_on_reconnect_redelivers_unacked(server: CanalServer) -> None:
    c = client(server)
    c.connect()
    parser().emit(transaction(100, 1))
    bid, entries = c.get_without_ack(10)
    assert len(entries) == 2
    c.disconnect()
    c.connect()  # subscribe + rollback(0)
    bid2, entries2 = c.get_without_ack(10)
    assert bid2 == bid + 1 and [e.header.logfileOffset for e in entries2] == [100, 150]
    c.ack(bid2)
    assert c.get_without_ack(10) == (-1, [])
    c.disconnect()


def test_wait_get_returns_when_data_arrives(server: CanalServer) -> None:
    with client(server) as c:
        c.connect()
        import threading

        t = threading.Timer(0.2, lambda: parser().emit(transaction(100, 1)))
        t.start()
        bid, entries = c.get_without_ack(2, timeout_ms=60_000)
        t.join()
        assert bid == 1 and len(entries) == 2


def test_several_client_ids_have_own_batches(server: CanalServer) -> None:
    a, b = client(server, client_id="1001"), client(server, client_id="1002")
    a.connect()
    b.connect()
    parser().emit(transaction(100, 1))
    assert a.get_without_ack(10)[0] == 1
    bid, entries = b.get_without_ack(1)
    assert bid == 1 and len(entries) == 1
    a.disconnect()
    b.disconnect()


def test_orphaned_blocking_get_does_not_steal_a_batch(server: CanalServer) -> None:
    raw = Raw(server.port)
    raw.auth()
    raw.send(pb.SUBSCRIPTION, pb.Sub(destination="example", client_id="1001").SerializeToString())
    assert raw.ack().error_code == 0
    raw.send(pb.GET, pb.Get(destination="example", client_id="1001", fetch_size=1).SerializeToString())  # block
    time.sleep(0.2)
    raw.close()
    time.sleep(0.2)
    c = client(server)
    c.connect()
    parser().emit(transaction(100, 1))
    bid, entries = c.get_without_ack(10, timeout_ms=2000)
    got = [e.header.logfileOffset for e in entries]
    if bid != 1:  # the orphan took batch 1 before noticing; the client's rollback must still cover it
        assert got == [100, 150]
    c.ack(bid)
    assert c.get_without_ack(10) == (-1, [])
    c.disconnect()


# ---------------------------------------------------------------- errors
def test_ack_errors_arrive_unsolicited_on_next_read(server: CanalServer) -> None:
    c = client(server)
    c.connect()
    c.ack(0)
    with pytest.raises(ProtocolError) as err:
        c.get_without_ack(10)
    assert err.value.code == 402
    assert not c.connected  # the stream is out of step: the client reconnects
    c.connect()
    parser().emit(transaction(100, 1))
    _bid, _ = c.get_without_ack(1)
    bid2, _ = c.get_without_ack(1)
    c.ack(bid2)  # not the oldest
    with pytest.raises(ProtocolError, match="is not the firstly"):
        c.get_without_ack(10)
    c.connect()
    c.ack(99)
    with pytest.raises(ProtocolError, match="is not exist"):
        c.get_without_ack(10)
    c.disconnect()


def test_ack_success_and_minus_one_reply_nothing(server: CanalServer) -> None:
    raw = Raw(server.port)
    raw.auth()
    raw.send(pb.SUBSCRIPTION, pb.Sub(destination="example", client_id="1001").SerializeToString())
    assert raw.ack().error_code == 0
    raw.send(pb.CLIENTACK, pb.ClientAck(destination="example", client_id="1001", batch_id=-1).SerializeToString())
    raw.send(pb.CLIENTROLLBACK, pb.ClientRollback(destination="example", client_id="1001").SerializeToString())
    raw.send(pb.GET, pb.Get(destination="example", client_id="1001", fetch_size=5, timeout=-1).SerializeToString())
    p = raw.read()  # the first reply is the GET's: ack -1 and rollback answered nothing
    assert p.type == pb.MESSAGES and p.version == 1
    assert codec.decode_body(p.body, pb.Messages).batch_id == -1
    raw.close()


def test_bad_requests_get_error_acks_and_connection_goes_on(server: CanalServer) -> None:
    raw = Raw(server.port)
    raw.auth()
    raw.send(pb.SUBSCRIPTION, pb.Sub(destination="", client_id="1001").SerializeToString())
    assert raw.ack().error_code == 401
    raw.send(pb.SUBSCRIPTION, pb.Sub(destination="example", client_id="abc").SerializeToString())
    assert raw.ack().error_code == 400
    raw.send(pb.SUBSCRIPTION, pb.Sub(destination="example", client_id="99999").SerializeToString())
    assert raw.ack().error_code == 400
    raw.send(pb.HEARTBEATS)
    a = raw.ack()
    assert a.error_code == 400 and "NOT supported" in a.error_message
    raw.send(pb.SUBSCRIPTION, b"\x0a\x50short")  # truncated body
    assert raw.ack().error_code == 400
    codec.write_frame(raw.sock, b"\xff\xff\xff\xff")  # garbage packet inside a good frame
    assert raw.ack().error_code == 400
    raw.send(pb.GET, pb.Get(destination="nope", client_id="1001", timeout=-1).SerializeToString())
    assert "destination:nope should start first" in raw.ack().error_message
    raw.send(pb.GET, pb.Get(destination="example", client_id="1001", timeout=-1).SerializeToString())
    assert "subscribe first" in raw.ack().error_message
    raw.send(pb.CLIENTROLLBACK, pb.ClientRollback(destination="example", client_id="1001").SerializeToString())
    raw.send(pb.SUBSCRIPTION, pb.Sub(destination="example", client_id="1001").SerializeToString())
    assert raw.ack().error_code == 0  # the unsubscribed rollback was ignored silently
    raw.close()


def test_oversized_truncated_and_garbage_frames_leave_server_serving(tmp_path: Path) -> None:
    srv, _ = start_server(make_conf(tmp_path, "canal.server.max.frame.bytes = 4096"))
    try:
        good = client(srv)
        good.connect()
        big = Raw(srv.port)
        big.auth()
        big.sock.sendall(struct.pack(">i", 1 << 30))
        a = big.ack()
        assert a.error_code == 400 and "over the limit" in a.error_message
        assert big.closed()
        trunc = Raw(srv.port)
        trunc.sock.sendall(struct.pack(">i", 100) + b"abc")
        trunc.sock.shutdown(socket.SHUT_WR)
        assert trunc.closed()
        neg = Raw(srv.port)
        neg.sock.sendall(b"\xff\xff\xff\xff")
        neg.ack()
        assert neg.closed()
        junk = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        junk.sendall(b"GET / HTTP/1.1\r\n\r\n")  # 0x47455420 = a 1.2 GB length
        junk.close()
        parser().emit(transaction(100, 1))
        assert len(good.get_without_ack(10)[1]) == 2
        good.disconnect()
    finally:
        srv.stop()


def test_not_running_destination_says_should_start_first(tmp_path: Path) -> None:
    srv, _ = start_server(make_conf(tmp_path))
    try:
        srv.embedded.stop_instance("example")  # type: ignore[union-attr]
        raw = Raw(srv.port)
        raw.auth()
        raw.send(pb.CLIENTROLLBACK, pb.ClientRollback(destination="example", client_id="1001").SerializeToString())
        assert "destination:example should start first" in raw.ack().error_message
        raw.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------- auth
def test_password_flow(tmp_path: Path) -> None:
    srv, _ = start_server(make_conf(tmp_path, f"canal.user = canal\ncanal.passwd = {scramble.stored_hash('s3cret')}"))
    try:
        ok = client(srv, username="canal", password="s3cret")
        ok.connect()
        ok.disconnect()
        with pytest.raises(ProtocolError, match="auth failed"):
            client(srv, username="canal", password="wrong").connect()
        with pytest.raises(ProtocolError, match="auth failed"):
            client(srv, username="other", password="s3cret").connect()
        raw = Raw(srv.port)
        raw.send(pb.CLIENTAUTHENTICATION)  # empty password refused; the connection stays for a retry
        assert raw.ack().error_code == 400
        raw.send(pb.SUBSCRIPTION, pb.Sub(destination="example", client_id="1001").SerializeToString())
        assert raw.ack().error_code == 400  # not authenticated yet
        token = scramble.client_token("s3cret", raw.seed)
        raw.send(pb.CLIENTAUTHENTICATION, pb.ClientAuth(username="canal", password=token.encode()).SerializeToString())
        assert raw.ack().error_code == 0
        raw.close()
    finally:
        srv.stop()


def test_idle_timeout_closes_connection(server: CanalServer) -> None:
    c = client(server, idle_timeout_ms=200)
    c.connect()
    time.sleep(0.6)
    with pytest.raises(RetriableError):
        for _ in range(100):  # the server closed the idle connection
            c.get_without_ack(1)
            time.sleep(0.1)


# ---------------------------------------------------------------- lifecycle
def test_sub_filter_replaces_parser_filter(server: CanalServer) -> None:
    c = client(server, filter="db\\.t_.*")
    c.connect()
    assert parser().filters == ["db\\.t_.*"]
    c.disconnect()


def test_lazy_destination_starts_on_first_sub_and_stops_on_last_unsub(tmp_path: Path) -> None:
    srv, _ = start_server(make_conf(tmp_path, "canal.instance.global.lazy = true"))
    try:
        assert not srv.embedded.is_running("example")  # type: ignore[union-attr]
        c = client(srv)
        c.connect()
        assert srv.embedded.is_running("example")  # type: ignore[union-attr]
        c.unsubscribe()
        assert not srv.embedded.is_running("example")  # type: ignore[union-attr]
        c.disconnect()
    finally:
        srv.stop()


def test_restart_resumes_from_meta_file(tmp_path: Path) -> None:
    conf = make_conf(tmp_path)
    srv, _ = start_server(conf)
    c = client(srv)
    c.connect()
    parser().emit(transaction(100, 1) + transaction(200, 1))
    bid, entries = c.get_without_ack(1)  # MEMSIZE 1 KB: all four events
    assert len(entries) == 4
    c.ack(bid)
    assert c.get_without_ack(1) == (-1, [])  # a round trip: the ack (which has no reply) was handled
    c.disconnect()
    srv.stop()  # the stop flush writes the last ack
    meta = (conf / "example" / "meta.dat").read_text()
    assert '"journalName":"mysql-bin.000001","position":300' in meta
    srv, _ = start_server(conf)
    try:
        assert parser().resume is not None and parser().resume.position == 300  # type: ignore[union-attr]
        c = client(srv)
        c.connect()
        parser().emit(transaction(100, 1) + transaction(300, 1))  # the replayed part is skipped per client
        _, entries = c.get_without_ack(1)
        assert [e.header.logfileOffset for e in entries] == [300, 350]
        c.disconnect()
    finally:
        srv.stop()


def test_metrics_endpoint(tmp_path: Path) -> None:
    import urllib.request

    conf = make_conf(tmp_path)
    with (conf / "canal.properties").open("a") as f:
        f.write("\ncanal.metrics.pull.port = 0\n")
    srv, _ = start_server(conf)
    try:
        c = client(srv)
        c.connect()
        parser().emit(transaction(100, 1))
        bid, _ = c.get_without_ack(1)
        c.ack(bid)
        c.get_without_ack(1)
        c.disconnect()
        assert srv.metrics is not None and srv.metrics.port
        body = urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics.port}/metrics", timeout=30).read().decode()
        assert 'canal_instance_running{destination="example"} 1.0' in body
        assert 'canal_instance_store_events{destination="example"} 0.0' in body
        assert 'canal_client_get_seconds_count{destination="example"} 2.0' in body
        assert 'canal_client_ack_seconds_count{destination="example"} 1.0' in body
        assert 'canal_instance_parsed_events_total{destination="example"} 2.0' in body
    finally:
        srv.stop()
