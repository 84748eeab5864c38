"""CanalClient: one TCP connection to a canal server speaking canal's protocol (Java SimpleCanalConnector's part).

Socket faults raise RetriableError; error Acks raise ProtocolError (with canal's code). canal answers a
failed CLIENTACK/CLIENTROLLBACK with an *unsolicited* error Ack that arrives as the reply to the next
request, so any read may surface an earlier ack's failure. After either error the connection is closed
(the stream can no longer be trusted to be in step): call ``connect()`` again.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from types import TracebackType

from google.protobuf.message import DecodeError

from adapter.errors import ProtocolError, RetriableError
from adapter.protocol import CanalProtocol_pb2 as pb
from adapter.protocol import EntryProtocol_pb2 as epb
from adapter.protocol import codec, scramble

log = logging.getLogger(__name__)

DEFAULT_FETCH = 1000  # the Java client turns fetch_size <= 0 into 1000


class CanalClient:
    """A canal TCP client for one (destination, client_id).

    ``so_timeout`` (seconds) bounds every socket read except a blocking GET; ``idle_timeout_ms``
    is sent in ClientAuth and makes the server close the connection after that much idleness.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str = "",
        password: str = "",
        client_id: str = "1001",
        destination: str,
        filter: str = "",
        so_timeout: float = 60.0,
        idle_timeout_ms: int = 3_600_000,
        connect_timeout: float = 10.0,
        max_frame: int = codec.DEFAULT_MAX_FRAME,
    ) -> None:
        self.host, self.port = host, port
        self.username, self._password = username, password
        self.client_id, self.destination, self.filter = client_id, destination, filter
        self.so_timeout, self.idle_timeout_ms = so_timeout, idle_timeout_ms
        self.connect_timeout, self.max_frame = connect_timeout, max_frame
        self._sock: socket.socket | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------ lifecycle
    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self, *, subscribe: bool = True) -> None:
        """Handshake and scrambled auth; then (by default) subscribe, which also sends rollback(0)."""
        with self._lock:
            self.disconnect()
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                sock.settimeout(self.so_timeout)
            except OSError as e:
                raise RetriableError(f"cannot connect to canal server {self.host}:{self.port}: {e}") from e
            self._sock = sock
            packet = self._read()
            if packet.type != pb.HANDSHAKE or packet.version != 1:
                self._close()
                raise ProtocolError(f"expected HANDSHAKE version 1, got type {packet.type} version {packet.version}")
            seed = codec.decode_body(packet.body, pb.Handshake).seeds
            token = scramble.client_token(self._password, seed)
            self._send(codec.client_auth(self.username, token, self.idle_timeout_ms))
            self._expect_ok("auth")
            log.info("canal connected", extra={"server": f"{self.host}:{self.port}", "destination": self.destination})
        if subscribe:
            self.subscribe()

    def disconnect(self) -> None:
        """Close the socket (no rollback, as the Java client's default)."""
        with self._lock:
            self._close()

    def __enter__(self) -> CanalClient:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.disconnect()

    # ------------------------------------------------------------ requests
    def subscribe(self, filter: str | None = None) -> None:
        """SUB (a non-empty filter replaces the server instance's table filter), then rollback(0).

        The rollback makes the server hand out again what this client got but did not ack before
        (the Java client does it on connect; doing it after SUB also works for lazy destinations).
        """
        with self._lock:
            if filter is not None:
                self.filter = filter
            self._send(codec.sub(self.destination, self.client_id, self.filter))
            self._expect_ok("subscribe")
            self.rollback(0)

    def unsubscribe(self) -> None:
        with self._lock:
            self._send(codec.unsub(self.destination, self.client_id, self.filter))
            self._expect_ok("unsubscribe")

    def get_without_ack_raw(self, batch_size: int = DEFAULT_FETCH, timeout_ms: int = -1) -> tuple[int, list[bytes]]:
        """GET: ``timeout_ms`` -1 polls, 0 blocks until a full batch, > 0 waits that long.

        Returns ``(batch_id, serialized entries)``; ``(-1, [])`` when nothing is available.
        """
        fetch = batch_size if batch_size > 0 else DEFAULT_FETCH
        with self._lock:
            self._send(codec.get(self.destination, self.client_id, fetch, timeout_ms, 2))
            packet = self._read(None if timeout_ms == 0 else max(timeout_ms, 0) / 1000.0)
            if packet.type == pb.ACK:
                self._raise_ack(packet, "get")
            if packet.type != pb.MESSAGES:
                self._close()
                raise ProtocolError(f"expected MESSAGES, got packet type {packet.type}")
            msgs = self._decode(packet.body, pb.Messages)
            return msgs.batch_id, list(msgs.messages)

    def get_without_ack(self, batch_size: int = DEFAULT_FETCH, timeout_ms: int = -1) -> tuple[int, list[epb.Entry]]:
        """Like :meth:`get_without_ack_raw` but with the entries parsed."""
        batch_id, raw = self.get_without_ack_raw(batch_size, timeout_ms)
        entries = []
        for data in raw:
            entry = epb.Entry()
            try:
                entry.ParseFromString(data)
            except (DecodeError, ValueError) as e:
                raise ProtocolError(f"batch {batch_id}: undecodable Entry: {e}") from e
            entries.append(entry)
        return batch_id, entries

    def ack(self, batch_id: int) -> None:
        """CLIENTACK. The server replies only on failure; that error surfaces on the next read."""
        if batch_id == -1:
            return  # the get was empty; canal ignores -1 too
        with self._lock:
            self._send(codec.client_ack(self.destination, self.client_id, batch_id))

    def rollback(self, batch_id: int = 0) -> None:
        """CLIENTROLLBACK (0 = everything not acked). Errors surface on the next read, as for ack."""
        with self._lock:
            self._send(codec.client_rollback(self.destination, self.client_id, batch_id))

    # ------------------------------------------------------------ plumbing
    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _require(self) -> socket.socket:
        if self._sock is None:
            raise RetriableError("not connected to the canal server; call connect()")
        return self._sock

    def _send(self, payload: bytes) -> None:
        sock = self._require()
        try:
            codec.write_frame(sock, payload)
        except OSError as e:
            self._close()
            raise RetriableError(f"canal server {self.host}:{self.port}: send failed: {e}") from e

    def _read(self, extra_wait: float | None = 0.0) -> pb.Packet:
        """Read one packet within so_timeout + ``extra_wait`` seconds (None: wait without limit)."""
        sock = self._require()
        try:
            sock.settimeout(None if extra_wait is None else self.so_timeout + extra_wait)
            return codec.read_packet(sock, self.max_frame)
        except ProtocolError:
            self._close()
            raise
        except (OSError, RetriableError) as e:
            self._close()
            raise RetriableError(f"canal server {self.host}:{self.port}: read failed: {e}") from e

    def _decode(self, body: bytes, message: type[codec.M]) -> codec.M:
        try:
            return codec.decode_body(body, message)
        except ProtocolError:
            self._close()
            raise

    def _raise_ack(self, packet: pb.Packet, what: str) -> None:
        reply = self._decode(packet.body, pb.Ack)
        self._close()
        if reply.error_code:
            raise ProtocolError(f"{what} failed: {reply.error_message}", code=reply.error_code)
        raise ProtocolError(f"{what}: unexpected OK Ack (stream out of step)")

    def _expect_ok(self, what: str) -> None:
        packet = self._read()
        if packet.type != pb.ACK:
            self._close()
            raise ProtocolError(f"{what}: expected ACK, got packet type {packet.type}")
        reply = self._decode(packet.body, pb.Ack)
        if reply.error_code:
            self._close()
            raise ProtocolError(f"{what} failed: {reply.error_message}", code=reply.error_code)
