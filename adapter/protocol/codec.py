"""canal's TCP framing and packet builders, shared by the server and the client.

A frame is a 4-byte big-endian signed length followed by one serialized ``Packet``. canal trusts
the length; we refuse frames over ``max_frame`` (default 64 MiB) so a bad peer cannot make us
allocate without bound. Every server packet carries ``version=1`` (the Java client checks it on
the handshake); the MESSAGES packet is written by hand so entry bytes are copied only once.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from adapter.errors import ProtocolError, RetriableError
from adapter.protocol import CanalProtocol_pb2 as pb
from adapter.protocol.pbwire import varint

DEFAULT_MAX_FRAME = 64 * 1024 * 1024
_HEADER = struct.Struct(">i")
M = TypeVar("M", bound=Message)


class PeerClosed(RetriableError):
    """The peer closed the connection, cleanly between frames or in the middle of one."""


# ---------------------------------------------------------------- framing
def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its big-endian int32 length."""
    return _HEADER.pack(len(payload)) + payload


def _recv_exact(sock: socket.socket, n: int, *, started: bool) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            if got == 0 and not started:
                raise PeerClosed("connection closed by peer")
            raise PeerClosed(f"connection closed in the middle of a frame ({got} of {n} bytes)")
        got += k
    return bytes(buf)


def read_frame(sock: socket.socket, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """Read one frame's payload. Raises PeerClosed on EOF, ProtocolError on a bad length.

    Socket timeouts propagate as ``TimeoutError``; other socket errors as ``OSError``.
    """
    (length,) = _HEADER.unpack(_recv_exact(sock, 4, started=False))
    if length < 0:
        raise ProtocolError(f"bad frame length {length}: expected 0..{max_frame}")
    if length > max_frame:
        raise ProtocolError(f"frame of {length} bytes is over the limit of {max_frame} bytes")
    return _recv_exact(sock, length, started=True) if length else b""


def write_frame(sock: socket.socket, payload: bytes) -> None:
    """Write one frame (header and payload in one send so small packets are one segment)."""
    sock.sendall(frame(payload))


def parse_packet(payload: bytes) -> pb.Packet:
    """Decode a frame's payload as a Packet; garbage raises ProtocolError (code 400)."""
    packet = pb.Packet()
    try:
        packet.ParseFromString(payload)
    except (DecodeError, ValueError) as e:
        raise ProtocolError(f"cannot decode packet: {e}") from e
    if packet.HasField("compression") and packet.compression not in (pb.COMPRESSIONCOMPATIBLEPROTO2, pb.NONE):
        raise ProtocolError(f"compression {packet.compression} is not supported")
    return packet


def read_packet(sock: socket.socket, max_frame: int = DEFAULT_MAX_FRAME) -> pb.Packet:
    return parse_packet(read_frame(sock, max_frame))


def decode_body(body: bytes, message: type[M]) -> M:
    """Decode a packet body as ``message``; garbage raises ProtocolError (code 400)."""
    out = message()
    try:
        out.ParseFromString(body)
    except (DecodeError, ValueError) as e:
        raise ProtocolError(f"cannot decode {message.__name__} body: {e}") from e
    return out


# ---------------------------------------------------------------- server packets
def _server_packet(ptype: int, body: bytes) -> bytes:
    return pb.Packet(version=1, type=ptype, body=body).SerializeToString()  # type: ignore[arg-type]


def handshake(seed: bytes) -> bytes:
    """HANDSHAKE packet with the auth seed; canal sets neither encoding nor compressions."""
    return _server_packet(pb.HANDSHAKE, pb.Handshake(seeds=seed).SerializeToString())


def ack(code: int = 0, message: str = "") -> bytes:
    """ACK packet. The OK ack has an empty body (an empty Ack serializes to nothing)."""
    body = b"" if code == 0 and not message else pb.Ack(error_code=code, error_message=message).SerializeToString()
    return _server_packet(pb.ACK, body)


def messages(batch_id: int, entries: Sequence[bytes]) -> bytes:
    """MESSAGES packet built by hand: version=1, type=MESSAGES, body=Messages{batch_id, entries}."""
    parts = [b"\x08", varint(batch_id)] if batch_id else []
    for entry in entries:
        parts += (b"\x12", varint(len(entry)), entry)
    body = b"".join(parts)
    return b"".join((b"\x10\x01\x18\x07\x2a", varint(len(body)), body))


# ---------------------------------------------------------------- client packets (no version, as the Java client)
def _client_packet(ptype: int, body: bytes) -> bytes:
    return pb.Packet(type=ptype, body=body).SerializeToString()  # type: ignore[arg-type]


def client_auth(username: str, password_token: str, timeout_ms: int) -> bytes:
    auth = pb.ClientAuth(
        username=username,
        password=password_token.encode(),
        net_read_timeout=timeout_ms,
        net_write_timeout=timeout_ms,
    )
    return _client_packet(pb.CLIENTAUTHENTICATION, auth.SerializeToString())


def sub(destination: str, client_id: str, filter: str) -> bytes:
    return _client_packet(pb.SUBSCRIPTION, pb.Sub(destination=destination, client_id=client_id,
                                                  filter=filter).SerializeToString())


def unsub(destination: str, client_id: str, filter: str = "") -> bytes:
    return _client_packet(pb.UNSUBSCRIPTION, pb.Unsub(destination=destination, client_id=client_id,
                                                      filter=filter).SerializeToString())


def get(destination: str, client_id: str, fetch_size: int, timeout: int, unit: int = 2) -> bytes:
    """GET with timeout/unit/auto_ack always set (proto3 reads a missing timeout as 0 = block)."""
    body = pb.Get(destination=destination, client_id=client_id, fetch_size=fetch_size, timeout=timeout,
                  unit=unit, auto_ack=False)
    return _client_packet(pb.GET, body.SerializeToString())


def client_ack(destination: str, client_id: str, batch_id: int) -> bytes:
    return _client_packet(pb.CLIENTACK, pb.ClientAck(destination=destination, client_id=client_id,
                                                     batch_id=batch_id).SerializeToString())


def client_rollback(destination: str, client_id: str, batch_id: int) -> bytes:
    return _client_packet(pb.CLIENTROLLBACK, pb.ClientRollback(destination=destination, client_id=client_id,
                                                               batch_id=batch_id).SerializeToString())
