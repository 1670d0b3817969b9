"""Defaults never wait on the network: a bounded probe of the mirrors, a remembered failure.

The default data (``lenet train`` with no ``--data``) may try a download before falling back to
the bundled sample. On a machine without network that must cost little, once:

- ``probe``: every mirror is asked for the first file's headers (an HTTP HEAD) from its own
  thread, all at once, under one deadline (``LENET_CONNECT_TIMEOUT``, default 1.5 s); the mirrors
  that answered in time are the ones the download uses. A mirror that accepts the connection and
  never answers (a proxy or firewall that black-holes) thus costs the deadline once, however many
  there are. A blocking DNS lookup cannot be given a timeout; a thread that is still stuck is
  simply abandoned (it holds no file).
- ``remember_failure`` writes ``<cache>/<name>.download-failed.json`` (time and reason); while it
  is younger than ``RETRY_AFTER_S`` (6 h) the default path does not try again. An explicit
  ``lenet data download NAME`` always tries, and clears it on success. The file is read back as
  untrusted input: anything but a small JSON object with a finite past time counts as absent.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from lenet_cli.data.sources import cache_root
from lenet_cli.files import atomic_write

RETRY_AFTER_S = 6 * 3600
USER_AGENT = "lenet-cli (+https://pypi.org/project/lenet-cli)"


def env_seconds(name: str, default: float) -> float:
    """A timeout from the environment; a value that is not a number in (0, 600] means default."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if math.isfinite(value) and 0 < value <= 600 else default


def connect_timeout() -> float:
    return env_seconds("LENET_CONNECT_TIMEOUT", 1.5)


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


def _ask(base: str, filename: str, timeout: float, answers: list) -> None:
    """Append (base, None) if ``base`` serves ``filename``'s headers, else (base, why not)."""
    request = urllib.request.Request(
        base + filename, method="HEAD", headers={"User-Agent": USER_AGENT}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            answers.append((base, None))
    except urllib.error.HTTPError as exc:
        answers.append((base, f"{base}: HTTP {exc.code}"))
    except (OSError, ValueError) as exc:  # URLError, a timeout, a refused connection, a bad URL
        why = getattr(exc, "reason", None) or exc
        answers.append((base, f"{base}: {getattr(why, 'strerror', None) or why}"))


def probe(
    bases: list[str], filename: str, timeout: float | None = None
) -> tuple[list[str], str | None]:
    """The mirrors (base URLs) that serve ``filename``, asked all at once, and why none did.

    Returns as soon as one answers (with those that have answered by then, in ``bases``'
    order), or at the deadline of ``timeout`` seconds for all of them together: ([], reason)."""
    timeout = connect_timeout() if timeout is None else timeout
    answers: list[tuple[str, str | None]] = []
    for base in bases:  # their sockets outlive the deadline: it, not a socket, ends the wait
        args = (base, filename, timeout + 1, answers)
        threading.Thread(target=_ask, args=args, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = list(answers)
        ready = {b for b, why in done if why is None}
        if ready or len(done) == len(bases):
            break
        time.sleep(0.01)
    done = list(answers)
    ready = {b for b, why in done if why is None}
    if ready:
        return [b for b in bases if b in ready], None
    why = {b: w for b, w in done}
    return [], "; ".join(why.get(b) or f"{b}: no answer within {timeout:g} s" for b in bases)
