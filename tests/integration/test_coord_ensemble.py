"""Killing a ZooKeeper ensemble member neither interrupts the holder of a running node nor causes a
failover. Uses a private 3-node ensemble started here (the shared one must never be stopped)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from adapter.coordination import paths
from adapter.coordination.running import RunningMonitor
from adapter.coordination.scheduler import ThreadScheduler
from adapter.coordination.session import ZkSession

sys.path.insert(0, str(Path(__file__).parent))
from test_coord_support import GateWatcher, Recorder, wait_for

JAR = "/usr/share/java/zookeeper.jar"
SLF4J = "/usr/share/java/slf4j-simple.jar"
PATH = paths.server_running("example")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _srvr(port: int) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"srvr")
            chunks = []
            while data := s.recv(4096):
                chunks.append(data)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


class Ensemble:
    def __init__(self, base: Path) -> None:
        ports = _free_ports(9)
        self.client_ports, quorum, election = ports[:3], ports[3:6], ports[6:]
        self.base = base
        self.procs: list[subprocess.Popen[bytes] | None] = [None, None, None]
        servers = "".join(f"server.{i + 1}=127.0.0.1:{quorum[i]}:{election[i]}\n" for i in range(3))
        for i in range(3):
            d = base / f"n{i + 1}"
            (d / "data").mkdir(parents=True)
            (d / "data" / "myid").write_text(str(i + 1))
            (d / "zoo.cfg").write_text(
                f"tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={d / 'data'}\nclientPort={self.client_ports[i]}\n"
                "clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n"
                "4lw.commands.whitelist=srvr,stat\nminSessionTimeout=1000\nmaxSessionTimeout=60000\n" + servers
            )

    @property
    def hosts(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    def start(self, i: int) -> None:
        cp = JAR + (f":{SLF4J}" if os.path.exists(SLF4J) else "")
        d = self.base / f"n{i + 1}"
        with open(d / "zk.log", "ab") as out:
            self.procs[i] = subprocess.Popen(
                ["java", "-Xmx128m", "-cp", cp, "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                 str(d / "zoo.cfg")],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def mode(self, i: int) -> str:
        for line in _srvr(self.client_ports[i]).splitlines():
            if line.startswith("Mode: "):
                return line[6:].strip()
        return ""

    def wait_ready(self) -> None:
        for i in range(3):
            if self.procs[i] is not None:
                wait_for(lambda i=i: self.mode(i) in ("leader", "follower"), timeout=90, what=f"member {i} up")

    def kill(self, i: int) -> None:
        p = self.procs[i]
        if p is not None:
            p.kill()
            p.wait(30)
            self.procs[i] = None

    def stop(self) -> None:
        for i in range(3):
            self.kill(i)


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ensemble]:
    if not (shutil.which("java") and os.path.exists(JAR)):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("java and ZooKeeper's jar are needed for the private ensemble")
        pytest.skip("java and /usr/share/java/zookeeper.jar are needed for the private ensemble")
    ens = Ensemble(tmp_path_factory.mktemp("zk-private-ensemble"))
    for i in range(3):
        ens.start(i)
    try:
        ens.wait_ready()
        yield ens
    finally:
        ens.stop()


def _connected_port(session: ZkSession) -> int:
    return int(session.client._connection._socket.getpeername()[1])  # kazoo internals: test-only


class Party:
    def __init__(self, hosts: str, name: str, rec: Recorder) -> None:
        self.session = ZkSession.connect(hosts, timeout_s=6.0)
        self.scheduler = ThreadScheduler(name).start()
        self.monitor = RunningMonitor(
            self.session, PATH, paths.ServerRunningData(name).to_json(), address=name, scheduler=self.scheduler,
            on_active=rec.active(name), on_inactive=rec.inactive(name), delay_s=0.0,
        )
        self.monitor.start()

    def close(self) -> None:
        self.monitor.stop()
        self.scheduler.stop()
        self.session.close()


@pytest.fixture
def parties(ensemble: Ensemble) -> Iterator[Any]:
    ensemble.wait_ready()
    made: list[Party] = []
    rec = Recorder()
    admin = KazooClient(hosts=ensemble.hosts, timeout=6)
    admin.start(30)
    if admin.exists("/otter"):
        admin.delete("/otter", recursive=True)

    def make(name: str) -> Party:
        p = Party(ensemble.hosts, name, rec)
        made.append(p)
        return p

    yield make, rec, admin
    for p in made:
        p.close()
    admin.stop()
    admin.close()


def _restart(ensemble: Ensemble, i: int) -> None:
    ensemble.start(i)
    ensemble.wait_ready()


def test_killing_a_member_the_holder_is_not_using_changes_nothing(ensemble: Ensemble, parties: Any) -> None:
    make, rec, admin = parties
    holder = make("holder:1")
    wait_for(holder.monitor.is_active, what="holder active")
    standby = make("standby:1")
    assert standby.monitor.wait_decided(30)
    sid = holder.session.session_id
    used = ensemble.client_ports.index(_connected_port(holder.session))
    others = [i for i in range(3) if i != used]
    victim = next((i for i in others if ensemble.mode(i) == "follower"), others[0])
    gate = GateWatcher({"holder": holder.monitor.is_active, "standby": standby.monitor.is_active})
    gate.start()
    ensemble.kill(victim)
    time.sleep(8)  # an observation window longer than the session timeout: nothing may happen in it
    gate.stop()
    try:
        assert gate.overlaps == []
        assert gate.seen == {"holder"}  # the standby was never active
        assert holder.monitor.is_active() and holder.session.session_id == sid
        assert rec.events == [("holder:1", "on")]  # never interrupted
        assert admin.get(PATH)[1].ephemeralOwner == sid
    finally:
        _restart(ensemble, victim)


def test_killing_the_member_the_holder_uses_does_not_fail_over(ensemble: Ensemble, parties: Any) -> None:
    """The holder's own server dies: it stops on SUSPENDED (it cannot know yet that its session will
    survive), reconnects to another member within the session timeout and holds the node again."""
    make, rec, admin = parties
    holder = make("holder:1")
    wait_for(holder.monitor.is_active, what="holder active")
    standby = make("standby:1")
    assert standby.monitor.wait_decided(30)
    sid = holder.session.session_id
    victim = ensemble.client_ports.index(_connected_port(holder.session))
    ensemble.kill(victim)
    try:
        wait_for(lambda: rec.count("holder:1", "on") == 2 and holder.monitor.is_active(), timeout=60,
                 what="holder holds again on the same session")
        assert holder.session.session_id == sid
        assert admin.get(PATH)[1].ephemeralOwner == sid
        assert rec.count("standby:1", "on") == 0 and rec.overlaps == []
    finally:
        _restart(ensemble, victim)
