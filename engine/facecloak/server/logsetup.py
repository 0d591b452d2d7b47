"""The server's log: a rotating file in the user's state folder (the server has no terminal)."""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOGGER_NAME = "facecloak.server"


class _PrivateRotatingFileHandler(RotatingFileHandler):
    """Every log file, rotated ones included, is created 0600 whatever the umask."""

    def _open(self):  # type: ignore[override]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def setup_logging(path: Path, level: str = "INFO", max_bytes: int = 1 << 20) -> logging.Logger:
    """Log to ``path`` (0600), keeping three rotated files of ``max_bytes`` each."""
    handler = _PrivateRotatingFileHandler(path, maxBytes=max_bytes, backupCount=3, encoding="utf-8")
    os.chmod(path, 0o600)  # a file left by an older version
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(message)s")
    )
    logger = logging.getLogger(LOGGER_NAME)
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger
