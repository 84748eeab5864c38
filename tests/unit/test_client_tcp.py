"""CanalClient against scripted peers: handshake checks, socket errors, error Acks, wire requests."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from adapter.client.tcp import CanalClient
from adapter.errors import ProtocolError, RetriableError
from adapter.protocol import CanalProtocol_pb2 as pb
from adapter.protocol import codec, scramble

SEED = bytes(range(1, 9))


@pytest.fixture
def peer() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """Start a one-connection scripted server; returns its port."""
    listeners: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(script: Callable[[socket.socket], None]) -> int:
        ls = socket.create_server(("127.0.0.1", 0))
        listeners.append(ls)

        def run() -> None:
            conn, _ = ls.accept()
            conn.settimeout(30)
            with conn, contextlib.suppress(OSError, codec.PeerClosed):
                script(conn)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)
        return int(ls.getsockname()[1])

    yield start
    for ls in listeners:
        ls.close()
    for t in threads:
        t.join(30)


def greet(conn: socket.socket, version: int = 1) -> pb.ClientAuth:
    codec.write_frame(conn, pb.Packet(version=version, type=pb.HANDSHAKE,
                                      body=pb.Handshake(seeds=SEED).SerializeToString()).SerializeToString())
    p = codec.read_packet(conn)
    assert p.type == pb.CLIENTAUTHENTICATION
    return codec.decode_body(p.body, pb.ClientAuth)


def test_auth_sends_scrambled_token_and_timeouts(peer: Callable[..., int]) -> None:
    seen: list[pb.ClientAuth] = []

    def script(conn: socket.socket) -> None:
        seen.append(greet(conn))
        codec.write_frame(conn, codec.ack())
        codec.read_frame(conn)  # wait for close

    port = peer(script)
    c = CanalClient("127.0.0.1", port, username="canal", password="canal", destination="example",
                    idle_timeout_ms=12345, so_timeout=30)
    c.connect(subscribe=False)
    c.disconnect()
    auth = seen[0]
    assert auth.username == "canal"
    assert auth.password == b"7de44690d8e53782cb61804a2455c284a3bbfb06"
    assert scramble.check_token(auth.password.decode(), SEED, scramble.stored_hash("canal"))
    assert auth.net_read_timeout == auth.net_write_timeout == 12345


def test_handshake_without_version_1_is_refused(peer: Callable[..., int]) -> None:
    port = peer(lambda conn: (codec.write_frame(conn, pb.Packet(type=pb.HANDSHAKE).SerializeToString()),
                              codec.read_frame(conn)))
    c = CanalClient("127.0.0.1", port, destination="example", so_timeout=30)
    with pytest.raises(ProtocolError, match="HANDSHAKE"):
        c.connect()
    assert not c.connected


def test_subscribe_then_rollback_zero_and_get_request_shape(peer: Callable[..., int]) -> None:
    got: list[pb.Packet] = []

    def script(conn: socket.socket) -> None:
        greet(conn)
        codec.write_frame(conn, codec.ack())
        got.append(codec.read_packet(conn))  # SUB
        codec.write_frame(conn, codec.ack())
        got.append(codec.read_packet(conn))  # ROLLBACK(0)
        got.append(codec.read_packet(conn))  # GET
        codec.write_frame(conn, codec.messages(-1, []))
        codec.read_frame(conn)

    port = peer(script)
    c = CanalClient("127.0.0.1", port, destination="example", client_id="1001", filter="db\\..*", so_timeout=30)
    c.connect()
    assert c.get_without_ack(0, timeout_ms=-1) == (-1, [])
    c.disconnect()
    sub = codec.decode_body(got[0].body, pb.Sub)
    assert (sub.destination, sub.client_id, sub.filter) == ("example", "1001", "db\\..*")
    rb = codec.decode_body(got[1].body, pb.ClientRollback)
    assert got[1].type == pb.CLIENTROLLBACK and rb.batch_id == 0
    get = codec.decode_body(got[2].body, pb.Get)
    assert (get.fetch_size, get.timeout, get.unit, get.auto_ack) == (1000, -1, 2, False)
    assert get.HasField("timeout") and get.HasField("auto_ack")


def test_error_ack_instead_of_messages_raises_with_code(peer: Callable[..., int]) -> None:
    def script(conn: socket.socket) -> None:
        greet(conn)
        codec.write_frame(conn, codec.ack())
        codec.read_packet(conn)  # GET
        codec.write_frame(conn, codec.ack(400, "destination:example should start first"))
        codec.read_frame(conn)

    port = peer(script)
    c = CanalClient("127.0.0.1", port, destination="example", so_timeout=30)
    c.connect(subscribe=False)
    with pytest.raises(ProtocolError, match="should start first") as err:
        c.get_without_ack(10)
    assert err.value.code == 400 and not c.connected


def test_socket_errors_are_retriable(peer: Callable[..., int]) -> None:
    ls = socket.create_server(("127.0.0.1", 0))
    port = ls.getsockname()[1]
    ls.close()
    with pytest.raises(RetriableError):
        CanalClient("127.0.0.1", port, destination="example", connect_timeout=5).connect()

    def script(conn: socket.socket) -> None:
        greet(conn)
        codec.write_frame(conn, codec.ack())
        codec.read_packet(conn)  # GET, then hang up without answering

    port = peer(script)
    c = CanalClient("127.0.0.1", port, destination="example", so_timeout=30)
    c.connect(subscribe=False)
    with pytest.raises(RetriableError):
        c.get_without_ack(10)
    assert not c.connected
    with pytest.raises(RetriableError, match="not connected"):
        c.ack(1)


def test_undecodable_entry_is_a_protocol_error(peer: Callable[..., int]) -> None:
    def script(conn: socket.socket) -> None:
        greet(conn)
        codec.write_frame(conn, codec.ack())
        codec.read_packet(conn)
        codec.write_frame(conn, codec.messages(1, [b"\xff\xff\xff"]))
        codec.read_frame(conn)

    port = peer(script)
    c = CanalClient("127.0.0.1", port, destination="example", so_timeout=30)
    c.connect(subscribe=False)
    with pytest.raises(ProtocolError, match="undecodable Entry"):
        c.get_without_ack(10)
