"""One client connection: handshake, scrambled auth, then SUB/UNSUB/GET/CLIENTACK/CLIENTROLLBACK.

Replies follow canal (spec §2): SUB/UNSUB/auth answer an Ack, GET answers MESSAGES (batch -1 when
empty), CLIENTACK/CLIENTROLLBACK answer nothing on success and an error Ack on failure. Bad input
gets an error Ack (400; 401 for a missing field; 402 for ack of batch 0); a frame over the limit,
a truncated frame or an idle connection closes this connection only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import time
from typing import TYPE_CHECKING

from adapter.errors import CanalError, ProtocolError
from adapter.protocol import CanalProtocol_pb2 as pb
from adapter.protocol import codec, scramble
from adapter.server.contracts import ClientIdentity

if TYPE_CHECKING:
    from adapter.server.config import ServerConfig
    from adapter.server.embedded import EmbeddedServer
    from adapter.server.metrics import ServerMetrics

log = logging.getLogger(__name__)

DEFAULT_IDLE_MS = 3_600_000  # canal: 1 hour when the client sends no timeout
MAX_AUTH_FAILURES = 5
#: Java TimeUnit ordinals → seconds; any other unit means milliseconds (canal's convertTimeUnit)
_UNITS = {0: 1e-9, 1: 1e-6, 2: 1e-3, 3: 1.0, 4: 60.0, 5: 3600.0, 6: 86400.0}
_NAMES = {v: k for k, v in pb.PacketType.items()}


class _Close(Exception):
    """End this connection (after the reply, if any, was sent)."""


def parse_client_id(value: str) -> int:
    """canal parses client_id as a Java short; anything else is error 400."""
    try:
        cid = int(value.strip(), 10)
    except ValueError:
        raise ProtocolError(f"clientId {value!r} is not a number (Java short expected)", code=400) from None
    if not -32768 <= cid <= 32767:
        raise ProtocolError(f"clientId {value!r} is out of range for a Java short", code=400)
    return cid


def get_timeout(get: pb.Get) -> float | None:
    """Store wait in seconds: -1 → 0 (poll), <= 0 or missing → None (block), > 0 → timeout × unit."""
    timeout = get.timeout if get.HasField("timeout") else 0
    if timeout == -1:
        return 0.0
    if timeout <= 0:
        return None
    return timeout * _UNITS.get(get.unit, 1e-3)


class Session:
    """Serves one accepted socket until it closes, idles out or sends bad framing."""

    def __init__(self, sock: socket.socket, peer: str, server: EmbeddedServer, config: ServerConfig,
                 metrics: ServerMetrics | None = None) -> None:
        self.sock, self.peer, self.server, self.config, self.metrics = sock, peer, server, config, metrics
        self._extra = {"peer": peer}

    def run(self) -> None:
        try:
            self._serve()
        except _Close:
            pass
        except TimeoutError:
            log.info("closing idle connection", extra=self._extra)
        except codec.PeerClosed as e:
            log.debug("connection closed by client: %s", e, extra=self._extra)
        except ProtocolError as e:  # framing we cannot recover from (over the limit, bad length)
            log.warning("closing connection on bad input: %s", e, extra=self._extra)
            self._try_send(codec.ack(e.code, str(e)))
        except OSError as e:
            log.info("connection error: %s", e, extra=self._extra)
        finally:
            with contextlib.suppress(OSError):
                self.sock.close()

    # ------------------------------------------------------------ phases
    def _serve(self) -> None:
        seed = os.urandom(8)
        self.sock.settimeout(self.config.auth_timeout_ms / 1000.0)
        self._send(codec.handshake(seed))
        idle_ms = self._authenticate(seed)
        self.sock.settimeout(idle_ms / 1000.0)
        while True:
            packet = self._read()
            if packet is not None:
                self._dispatch(packet)

    def _read(self) -> pb.Packet | None:
        """Next packet; an undecodable one is answered with an error Ack and skipped (framing is intact)."""
        payload = codec.read_frame(self.sock, self.config.max_frame)
        try:
            return codec.parse_packet(payload)
        except ProtocolError as e:
            self._send(codec.ack(e.code, str(e)))
            return None

    def _authenticate(self, seed: bytes) -> int:
        failures = 0
        while True:
            packet = self._read()
            if packet is None:
                continue
            if packet.type != pb.CLIENTAUTHENTICATION:
                self._send(codec.ack(400, "auth first: expected CLIENTAUTHENTICATION"))
                continue
            try:
                auth = codec.decode_body(packet.body, pb.ClientAuth)
            except ProtocolError as e:
                self._send(codec.ack(e.code, str(e)))
                continue
            token = auth.password.decode("utf-8", "replace")
            if not scramble.authenticate(self.config.user, self.config.passwd, auth.username, token, seed):
                failures += 1
                log.warning("auth failed", extra={**self._extra, "user": auth.username})
                self._send(codec.ack(400, f"auth failed for user:{auth.username}"))
                if failures >= MAX_AUTH_FAILURES:
                    raise _Close()
                continue
            if auth.destination and auth.client_id:  # the Java client never sends these; canal subscribes
                try:
                    client = ClientIdentity(auth.destination, parse_client_id(auth.client_id), auth.filter)
                    self.server.subscribe(client)
                except CanalError as e:
                    self._send(codec.ack(getattr(e, "code", 400), str(e)))
                    raise _Close() from e
            self._send(codec.ack())
            read_ms = auth.net_read_timeout if auth.HasField("net_read_timeout") else 0
            log.info("client authenticated", extra={**self._extra, "user": auth.username})
            return read_ms if read_ms > 0 else DEFAULT_IDLE_MS

    # ------------------------------------------------------------ requests
    def _dispatch(self, packet: pb.Packet) -> None:
        kind = packet.type
        try:
            if kind == pb.SUBSCRIPTION:
                sub = codec.decode_body(packet.body, pb.Sub)
                self.server.subscribe(self._client(sub.destination, sub.client_id, sub.filter))
                self._send(codec.ack())
            elif kind == pb.UNSUBSCRIPTION:
                unsub = codec.decode_body(packet.body, pb.Unsub)
                self.server.unsubscribe(self._client(unsub.destination, unsub.client_id, unsub.filter))
                self._send(codec.ack())
            elif kind == pb.GET:
                self._get(codec.decode_body(packet.body, pb.Get))
            elif kind == pb.CLIENTACK:
                self._ack(codec.decode_body(packet.body, pb.ClientAck))
            elif kind == pb.CLIENTROLLBACK:
                rb = codec.decode_body(packet.body, pb.ClientRollback)
                self.server.rollback(self._client(rb.destination, rb.client_id), rb.batch_id)
            else:
                raise ProtocolError(f"packet type: {_NAMES.get(kind, kind)} is NOT supported!")
        except ProtocolError as e:
            self._send(codec.ack(e.code, str(e)))
        except CanalError as e:
            log.warning("request failed: %s", e, extra=self._extra)
            self._send(codec.ack(400, f"something goes wrong with channel: {self.peer}, exception={e}"))
        except (OSError, _Close):
            raise
        except Exception as e:  # a bug must fail this request, not the server
            log.exception("request failed", extra=self._extra)
            self._send(codec.ack(400, f"something goes wrong with channel: {self.peer}, exception={e!r}"))

    @staticmethod
    def _client(destination: str, client_id: str, filter: str = "") -> ClientIdentity:
        if not destination or not client_id:
            raise ProtocolError("destination or clientId is null", code=401)
        return ClientIdentity(destination, parse_client_id(client_id), filter)

    def _get(self, get: pb.Get) -> None:
        client = self._client(get.destination, get.client_id)
        started = time.monotonic()
        batch_id, events = self.server.get(client, get.fetch_size, get_timeout(get), self._peer_gone)
        if self.metrics is not None:  # before the reply, so a client that saw it also sees the metric
            self.metrics.observe_get(client.destination, time.monotonic() - started, len(events))
        self._send(codec.messages(batch_id, [e.entry for e in events]))

    def _ack(self, ack: pb.ClientAck) -> None:
        client = self._client(ack.destination, ack.client_id)
        if ack.batch_id == 0:
            raise ProtocolError("batchId should assign value", code=402)
        if ack.batch_id == -1:
            return  # the get was empty
        started = time.monotonic()
        self.server.ack(client, ack.batch_id)
        if self.metrics is not None:
            self.metrics.observe_ack(client.destination, time.monotonic() - started)

    # ------------------------------------------------------------ io
    def _peer_gone(self) -> bool:
        """True when the client closed its end (checked while a GET waits)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            return bool(readable) and self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            return True

    def _send(self, payload: bytes) -> None:
        codec.write_frame(self.sock, payload)

    def _try_send(self, payload: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.settimeout(1.0)
            self._send(payload)
