"""``canal-server``: command-line entry point (config, logging, signals, exit codes).

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 2 when it cannot start (bad configuration,
port in use, ZooKeeper unreachable), with a message naming the file and key.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from adapter import obslog
from adapter.errors import ConfigError, CoordinationLost
from adapter.server.config import load_config
from adapter.server.runtime import CanalServer

log = logging.getLogger("canal.server")

EPILOG = """\
configuration (canal's own layout, loaded unchanged):
  DIR/canal.properties                  server keys: canal.ip, canal.port, canal.metrics.pull.port,
                                        canal.user, canal.passwd, canal.destinations, canal.zkServers, ...
  DIR/<destination>/instance.properties per-destination keys (override canal.properties)
  meta (cursors): canal.instance.global.spring.xml = file-instance.xml -> <canal.file.data.dir>/<dest>/meta.dat,
                  default-instance.xml -> ZooKeeper, memory-instance.xml -> not persisted
  canal.server.max.frame.bytes          largest accepted frame (default 67108864)
  canal.server.auth.timeout             ms a new connection may take to authenticate (default 60000)
  Environment variables named like a key (canal.port=11111) override the files, as in canal's docker image.

see docs/server.md for every key, the protocol and the deviations from canal.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="canal-server",
        description="Binlog server speaking Alibaba canal's TCP protocol (MySQL/MariaDB row binlog -> canal Entries).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--conf", default="./conf", metavar="DIR",
                   help="directory holding canal.properties and one sub-directory per destination (default ./conf)")
    p.add_argument("--log-json", action="store_true", help="log one JSON object per line (default: key=value text)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="log level (default INFO)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    obslog.configure(args.log_level, json=args.log_json)
    try:
        config = load_config(Path(args.conf))
    except ConfigError as e:
        print(f"canal-server: configuration error: {e}", file=sys.stderr)
        return 2
    server = CanalServer(config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal received, stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
    except (ConfigError, CoordinationLost) as e:
        print(f"canal-server: cannot start: {e}", file=sys.stderr)
        return 2
    while not stop.wait(1.0):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
