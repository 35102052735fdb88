"""The web app served by uvicorn in a thread of its own, beside a central worker's loop.

Owns the server's lifetime and what it logs. The worker's loop and the web's event loop share
nothing but the ViewHub, so a slow office (a long estimate round) never holds a page, and a slow
page never holds the worker.

Logging: uvicorn's access log is off and uvicorn leaves the process's logging alone
(`log_config=None`): a ticket page's path holds its token, which must never reach a log. As a
second guard, `TokenFilter` on uvicorn's loggers blanks any `/t/<token>` that would still appear
(an access log turned on by hand, an error message quoting a path).
"""

from __future__ import annotations

import logging
import re
import threading

import uvicorn
from starlette.types import ASGIApp

STOP_WAIT_S = 5.0  # a clean stop: open live streams are cut after GRACE_S
GRACE_S = 1
_TOKEN_PATH = re.compile(r"/t/[^/\s?\"']+")
_log = logging.getLogger(__name__)


def redact(message: str) -> str:
    return _TOKEN_PATH.sub("/t/…", message)


class TokenFilter(logging.Filter):
    """Blanks ticket tokens in a record's message (its arguments formatted in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def guard_logs() -> None:
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenFilter) for f in logger.filters):
            logger.addFilter(TokenFilter())


class WebServer:
    """`start()` serves `app` on host:port (0: a free port, then `port` says which) from a
    daemon thread; `close()` stops it. OSError from start() when the port cannot be bound."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        guard_logs()
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            access_log=False,
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=GRACE_S,
        )
        self.server = uvicorn.Server(config)
        self.host = host
        self.port = port
        self._thread = threading.Thread(target=self._run, name="central-web", daemon=True)
        self._failed: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # SystemExit from uvicorn when the port is taken
            self._failed = exc

    def start(self, timeout: float = 10.0) -> WebServer:
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise OSError(f"cannot serve the web pages on {self.host}:{self.port}: {self._failed!r}")
            self._thread.join(0.02)
            timeout -= 0.02
            if timeout <= 0:
                raise OSError(f"the web server on {self.host}:{self.port} did not start")
        sockets = [s for server in self.server.servers for s in server.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self._thread.join(STOP_WAIT_S)
        if self._thread.is_alive():
            _log.warning("central web: the server did not stop within %.0f s", STOP_WAIT_S)
