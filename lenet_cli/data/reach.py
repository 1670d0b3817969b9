"""Defaults never wait on the network: a bounded probe of the mirrors, a remembered failure.

The default data (``lenet train`` with no ``--data``) may try a download before falling back to
the bundled sample. On a machine without network that must cost little, once:

- ``probe``: the mirrors' hosts are resolved and connected to from threads, all together, with
  one deadline (``LENET_CONNECT_TIMEOUT``, default 3 s). A blocking DNS lookup cannot be given a
  timeout; a thread that is still stuck is simply abandoned (it holds no file).
- ``remember_failure`` writes ``<cache>/<name>.download-failed.json`` (time and reason); while it
  is younger than ``RETRY_AFTER_S`` (6 h) the default path does not try again. An explicit
  ``lenet data download NAME`` always tries, and clears it on success. The file is read back as
  untrusted input: anything but a small JSON object with a finite past time counts as absent.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import urllib.parse
from pathlib import Path

from lenet_cli.data.sources import cache_root
from lenet_cli.files import atomic_write

RETRY_AFTER_S = 6 * 3600


def env_seconds(name: str, default: float) -> float:
    """A timeout from the environment; a value that is not a number in (0, 600] means default."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if math.isfinite(value) and 0 < value <= 600 else default


def connect_timeout() -> float:
    return env_seconds("LENET_CONNECT_TIMEOUT", 3.0)


def _memory_path(name: str) -> Path:
    return cache_root() / f"{name}.download-failed.json"  # beside, not inside, the data dir


def remembered_failure(name: str, now: float | None = None) -> dict | None:
    """{"time", "reason"} of a failure younger than RETRY_AFTER_S, else None."""
    path = _memory_path(name)
    try:
        if path.stat().st_size > 4096:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    when, reason = doc.get("time"), doc.get("reason")
    now = time.time() if now is None else now
    if not isinstance(when, (int, float)) or isinstance(when, bool) or not math.isfinite(when):
        return None
    if not isinstance(reason, str) or not 0 <= now - when < RETRY_AFTER_S:
        return None
    return {"time": float(when), "reason": reason[:300]}


def remember_failure(name: str, reason: str) -> None:
    path = _memory_path(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as out:
            out.write(json.dumps({"time": time.time(), "reason": reason[:300]}).encode())
    except OSError:
        pass  # a cache we cannot write only means trying again next time


def forget_failure(name: str) -> None:
    try:
        _memory_path(name).unlink(missing_ok=True)
    except OSError:
        pass


def _connect(host: str, port: int, timeout: float, results: list) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            results.append(None)
    except OSError as exc:
        results.append(f"{host}:{port}: {exc.strerror or exc}")


def probe(urls: list[str], timeout: float | None = None) -> str | None:
    """None if any mirror accepts a connection within ``timeout`` seconds, else why not."""
    timeout = connect_timeout() if timeout is None else timeout
    results: list[str | None] = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname:
            results.append(f"{url}: not a URL")
            continue
        port = parts.port or (443 if parts.scheme == "https" else 80)
        t = threading.Thread(
            target=_connect, args=(parts.hostname, port, timeout, results), daemon=True
        )
        t.start()
    deadline = time.monotonic() + timeout
    while None not in results and len(results) < len(urls) and time.monotonic() < deadline:
        time.sleep(0.01)
    if None in results:
        return None
    failures = [r for r in list(results) if r is not None]
    if len(failures) < len(urls):
        failures.append(f"no answer within {timeout:g} s")
    return "; ".join(failures)
