"""``canal-adapter`` command line: load ``--config DIR`` (canal's conf/ layout), run the node until signalled."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from adapter import __version__, obslog
from adapter.errors import ConfigError

log = logging.getLogger("adapter.node")

EXIT_CONFIG = 2

DESCRIPTION = """\
Run a canal-adapter node: pull row changes from canal-server (TCP protocol), route them through
the configured writers (logger, rdb, es6/es7/es8, redis, plugins) and acknowledge each batch only
after every writer of its group applied it.

DIR follows canal's conf/ layout:
  DIR/application.yml        canal.conf: consumerProperties, canalAdapters, srcDataSources, ...
  DIR/<writer>/*.yml         mapping files (rdb/, es7/, redis/ ...); the file name is the REST task

Secrets may come from the environment: CANAL_TCP_USERNAME, CANAL_TCP_PASSWORD,
CANAL_SRC_<KEY>_USERNAME/_PASSWORD, CANAL_WRITER_<KEY>_<PROPERTY> (see docs/configuration.md).
"""

EPILOG = """\
exit codes: 0 stopped by SIGTERM/SIGINT, 2 configuration error (the message names file and key).
REST: POST /etl/{type}[/{key}]/{task}, GET /count/..., GET /destinations,
      PUT|GET /syncSwitch/{destination}[/{on|off}], GET /health, GET /metrics
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="canal-adapter", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", metavar="DIR", default=os.environ.get("CANAL_ADAPTER_CONF", "conf"),
                   help="conf directory holding application.yml (or the file itself); default: ./conf "
                        "or $CANAL_ADAPTER_CONF")
    p.add_argument("--log-json", action="store_true", help="log one JSON object per line (default: key=value text)")
    p.add_argument("--log-level", default=os.environ.get("CANAL_ADAPTER_LOG_LEVEL", "INFO"),
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper, help="default INFO")
    p.add_argument("--port", type=int, default=None, help="REST port (overrides server.port)")
    p.add_argument("--check", action="store_true",
                   help="validate application.yml, writers and mapping files, then exit (0 = valid)")
    p.add_argument("--version", action="version", version=f"canal-adapter {__version__}")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    obslog.configure(args.log_level, json=args.log_json)
    from adapter.node.app import AdapterNode
    from adapter.node.configload import load_config

    node = None
    try:
        cfg = load_config(args.config)
        node = AdapterNode(cfg, rest_port=args.port)
        if args.check:
            print(f"canal-adapter: {cfg.file}: configuration is valid "
                  f"({len(cfg.tasks)} task(s), {len(node.store.files)} mapping file(s))")
            return 0
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal received; stopping", extra={"signal": signal.Signals(signum).name})
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        node.start()
    except ConfigError as e:
        log.error("configuration error", extra={"config_file": e.source, "key": e.key, "problem": str(e)})
        print(f"canal-adapter: configuration error: {e}", file=sys.stderr)
        if node is not None and not args.check:
            node.stop()  # whatever started before the error (REST, ZooKeeper) goes down cleanly
        return EXIT_CONFIG
    try:
        while not stop.wait(1.0):
            pass
    finally:
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
