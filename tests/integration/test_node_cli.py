"""The ``canal-adapter`` command as a subprocess: exit 2 naming file and key; plugins found by entry point."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

BIN = Path(sys.executable).with_name("canal-adapter")


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout)


def write_conf(d: Path, writers: list[dict[str, object]], port: int = 0) -> Path:
    cfg = {"server": {"port": port}, "canal.conf": {
        "consumerProperties": {"canal.tcp.server.host": "127.0.0.1:1"},
        "canalAdapters": [{"instance": "example", "groups": [{"groupId": "g1", "outerAdapters": writers}]}]}}
    (d / "application.yml").write_text(yaml.safe_dump(cfg))
    return d


def test_help() -> None:
    r = run("--help")
    assert r.returncode == 0 and "--config" in r.stdout and "--log-json" in r.stdout


def test_bad_config_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    write_conf(tmp_path, [{"name": "logger"}, {"name": "es"}])
    r = run("--config", str(tmp_path))
    assert r.returncode == 2
    assert str(tmp_path / "application.yml") in r.stderr
    assert "canal.conf.canalAdapters[0].groups[0].outerAdapters[1].name" in r.stderr
    (tmp_path / "application.yml").write_text("canal.conf:\n  retries: [1,\n")
    r = run("--config", str(tmp_path), "--log-json")
    assert r.returncode == 2 and "line" in r.stderr and str(tmp_path / "application.yml") in r.stderr
    r = run("--config", str(tmp_path / "missing"))
    assert r.returncode == 2 and "application.yml" in r.stderr


def test_bad_mapping_file_exits_2(tmp_path: Path) -> None:
    write_conf(tmp_path, [{"name": "rdb", "key": "k1", "properties": {"jdbc.url": "sqlite://"}}])
    (tmp_path / "rdb").mkdir()
    (tmp_path / "rdb" / "t.yml").write_text("outerAdapterKey: k1\ndataSourceKey: nope\ndbMapping: {}\n")
    r = run("--config", str(tmp_path), "--check")
    assert r.returncode == 2 and str(tmp_path / "rdb" / "t.yml") in r.stderr and "dataSourceKey" in r.stderr


def test_example_plugin_is_discovered_by_entry_point(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    write_conf(tmp_path, [{"name": "jsonl", "properties": {"path": str(out)}}])
    r = run("--config", str(tmp_path), "--check")
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    write_conf(tmp_path, [{"name": "logger"}], port=port)
    p = subprocess.Popen([str(BIN), "--config", str(tmp_path), "--log-json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    assert resp.status in (200, 503)
                    break
            except OSError:
                assert p.poll() is None, p.stderr.read() if p.stderr else ""
                assert time.monotonic() < deadline, "node did not serve /health"
                time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
