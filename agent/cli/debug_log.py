"""`--debug`: a log file under `$DSV4_HOME/logs/` for this run (no logging reaches the terminal otherwise)."""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from dsv4.home import dsv4_home

from ..redact import redact


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def start_debug_log(args: argparse.Namespace) -> Path:
    logs = dsv4_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"dsv4-code-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("dsv4")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.debug("dsv4-code %s", " ".join(f"{k}={v!r}" for k, v in sorted(vars(args).items())))
    return path
