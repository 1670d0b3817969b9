"""The listening socket and uvicorn (nothing printed: the CLI says what happens).

The socket is opened here, before uvicorn starts, so that a port that cannot be listened on is
one ServiceError (exit 16) naming the address, not a log line from inside the server.
SIGINT and SIGTERM stop the server: uvicorn finishes the requests in flight (at most
``GRACE_S``) and ``run`` returns, which is the server's normal end. They do so from the moment
``run`` announces the address, before uvicorn takes the signals over.
"""

from __future__ import annotations

import errno
import ipaddress
import signal
import socket
from collections.abc import Callable
from typing import Any

from lenet_cli.errors import MissingExtraError, ServiceError

GRACE_S = 3  # seconds for requests in flight after SIGINT/SIGTERM; then connections are closed


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (port 0: one the system picks), or ServiceError."""
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as e:
        raise ServiceError(
            f"cannot listen on {where}: the host is not an address of this machine ({e})",
            hint="use --host 127.0.0.1 (this machine only) or an address of one of its interfaces",
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart within TIME_WAIT
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno in (errno.EADDRINUSE,):
            hint = "another program listens there: pick another --port, or stop it"
        elif e.errno == errno.EADDRNOTAVAIL:
            hint = "the host is not an address of this machine: pass one of its addresses"
        else:
            hint = "pick a --port above 1023, or another --host"
        raise ServiceError(f"cannot listen on {where}: {e.strerror or e}", hint=hint) from None
    return sock


def url(sock: socket.socket) -> str:
    """The page's address for a listening socket (IPv6 in brackets; 0.0.0.0 as itself)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def check_extra() -> None:
    """FastAPI, uvicorn and python-multipart can be imported, or exit 14 naming the missing one."""
    import importlib

    for name in ("fastapi", "uvicorn", "python_multipart"):
        try:
            importlib.import_module(name)
        except ImportError:
            package = name.replace("_", "-")
            raise MissingExtraError(
                f"lenet serve needs {package}, which is not installed",
                hint="pip install 'lenet-cli[serve]'",
            ) from None


def run(app: Any, sock: socket.socket, announce: Callable[[], None]) -> int | None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM; the signal that stopped it.
    ``announce`` (which says the address) is called once SIGINT or SIGTERM would stop it."""
    import torch
    import uvicorn

    # One picture is far too small a job to split across threads: requests run side by side
    # in the thread pool instead, each on one torch thread. With torch's default (a thread per
    # core) every request's threads wait on each other, and on busy cores a prediction took
    # 10-30 times as long.
    torch.set_num_threads(1)
    config = uvicorn.Config(
        app,
        log_level="warning",  # the CLI says what matters; uvicorn's INFO lines would repeat it
        # uvicorn's own logging set-up writes to sys.stdout, and fails when it is closed (a
        # service started with >&-); without it its warnings reach stderr through logging
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=GRACE_S,
    )
    server = uvicorn.Server(config)
    stopped: list[int] = []

    def note(signum: int, frame: Any) -> None:
        stopped.append(signum)
        server.should_exit = True  # before uvicorn has its own handlers: it stops as it starts

    # uvicorn takes SIGINT/SIGTERM while it serves and raises the signal again once it has shut
    # down, to the handlers it found: these record it, so the stop is a normal return.
    old = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        announce()
        server.run(sockets=[sock])
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        sock.close()
    return stopped[0] if stopped else None
