"""Codec: spec §1.5 example frames byte-for-byte, the raw MESSAGES path, frame limits and garbage."""

from __future__ import annotations

import socket
import struct

import pytest

from adapter.errors import ProtocolError
from adapter.protocol import CanalProtocol_pb2 as pb
from adapter.protocol import codec


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


def test_handshake_frame_matches_spec() -> None:
    assert codec.frame(codec.handshake(bytes(range(1, 9)))) == h("00000010 1001 1801 2a0a 1208 0102030405060708")


def test_ok_ack_frame_has_empty_body() -> None:
    assert codec.frame(codec.ack()) == h("00000004 1001 1803")


def test_error_ack_frame_matches_spec() -> None:
    assert codec.frame(codec.ack(400, "x")) == h("0000000c 1001 1803 2a06 089003 120178")


def test_empty_messages_frame_matches_spec() -> None:
    assert codec.frame(codec.messages(-1, [])) == h("00000011 1001 1807 2a0b 08ffffffffffffffffff01")


@pytest.mark.parametrize("batch_id", [-1, 1, 127, 128, 300, 2**40])
@pytest.mark.parametrize("entries", [[], [b""], [b"a"], [b"x" * 200, b"yz", b"q" * 70000]])
def test_raw_messages_equal_protobuf_serialization(batch_id: int, entries: list[bytes]) -> None:
    body = pb.Messages(batch_id=batch_id, messages=entries).SerializeToString()
    expected = pb.Packet(version=1, type=pb.MESSAGES, body=body).SerializeToString()
    assert codec.messages(batch_id, entries) == expected
    packet = codec.parse_packet(codec.messages(batch_id, entries))
    assert packet.version == 1
    assert list(codec.decode_body(packet.body, pb.Messages).messages) == entries


def test_java_style_get_is_decodable() -> None:
    # Java client GET: no version, explicit auto_ack=false, timeout -1, unit 2.
    packet = codec.parse_packet(codec.get("example", "1001", 100, -1, 2))
    assert not packet.HasField("version")
    get = codec.decode_body(packet.body, pb.Get)
    assert (get.destination, get.client_id, get.fetch_size, get.timeout, get.unit) == ("example", "1001", 100, -1, 2)
    assert get.HasField("auto_ack") and not get.auto_ack
    want = h("0a07") + b"example" + h("1204") + b"1001" + h("1864 20ffffffffffffffffff01 2802 3000")
    assert codec.get("example", "1001", 100, -1, 2) == h("1806 2a20") + want


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    return a, b


def test_read_write_frame_round_trip() -> None:
    a, b = _pair()
    with a, b:
        codec.write_frame(a, codec.ack(401, "missing"))
        codec.write_frame(a, b"")
        packet = codec.read_packet(b)
        assert codec.decode_body(packet.body, pb.Ack).error_code == 401
        assert codec.read_frame(b) == b""


def test_oversized_frame_is_refused_before_reading_it() -> None:
    a, b = _pair()
    with a, b:
        a.sendall(struct.pack(">i", 1025))
        with pytest.raises(ProtocolError, match="over the limit"):
            codec.read_frame(b, max_frame=1024)


def test_negative_length_is_refused() -> None:
    a, b = _pair()
    with a, b:
        a.sendall(struct.pack(">i", -5))
        with pytest.raises(ProtocolError):
            codec.read_frame(b)


def test_truncated_frame_and_clean_eof() -> None:
    a, b = _pair()
    with b:
        a.sendall(struct.pack(">i", 10) + b"abc")
        a.close()
        with pytest.raises(codec.PeerClosed, match="middle of a frame"):
            codec.read_frame(b)
    a, b = _pair()
    with b:
        a.close()
        with pytest.raises(codec.PeerClosed, match="closed by peer"):
            codec.read_frame(b)


def test_garbage_packet_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        codec.parse_packet(b"\xff\xff\xff\xff\xff")
    with pytest.raises(ProtocolError):
        codec.decode_body(b"\x0a\x50abc", pb.Sub)


def test_compressed_packets_are_refused() -> None:
    payload = pb.Packet(type=pb.GET, compression=pb.ZLIB, body=b"").SerializeToString()
    with pytest.raises(ProtocolError, match="compression"):
        codec.parse_packet(payload)
