"""Verified downloads: each file from the first mirror that serves the published bytes.

A file is streamed into a temporary file next to its destination while its MD5 is computed,
checked against the published checksum and the announced length, fsync'ed and renamed into
place -- so the cache never holds a partial or wrong file, whatever fails and wherever.
Mirrors come from the ``mirrors=`` argument, else ``$LENET_MIRRORS`` (comma-separated base URLs),
else the list in sources.py. ``LENET_OFFLINE=1`` refuses any network access.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from lenet_cli.data.reach import USER_AGENT, env_seconds, forget_failure, remember_failure
from lenet_cli.data.sources import SPECS, Located, cache_dir, find_source
from lenet_cli.errors import DataNotFoundError, UsageError, WriteError
from lenet_cli.files import atomic_write

_TIMEOUT_ENV = "LENET_DOWNLOAD_TIMEOUT"  # seconds for the connection and each read
_BLOCK = 1 << 16
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def offline() -> bool:
    return os.environ.get("LENET_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def mirrors_for(name: str, mirrors: Sequence[str] | None = None) -> list[str]:
    if mirrors is None:
        env = os.environ.get("LENET_MIRRORS", "")
        mirrors = [m.strip() for m in env.split(",") if m.strip()] or list(SPECS[name].mirrors)
    return [m if m.endswith("/") else m + "/" for m in mirrors]


def md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, dest: Path, md5: str, on_progress, timeout: float) -> None:
    """Download ``url`` to ``dest`` atomically; raise OSError, ValueError or HTTPException."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with atomic_write(dest) as out, urllib.request.urlopen(request, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        digest = hashlib.md5(usedforsecurity=False)
        done = 0
        if on_progress:
            on_progress(0, total)
        while block := resp.read(_BLOCK):
            out.write(block)
            digest.update(block)
            done += len(block)
            if on_progress:
                on_progress(done, total)
        if total is not None and done != total:
            raise ValueError(f"transfer cut off after {done:,} of {total:,} bytes")
        if digest.hexdigest() != md5:
            raise ValueError(f"checksum mismatch (MD5 {digest.hexdigest()}, expected {md5})")


def _reason(url: str, exc: Exception, on_event) -> str:
    """ "URL: why" for a mirror that failed (an HTTP status, a connection error...)."""
    http_error = isinstance(exc, urllib.error.HTTPError)
    reason = exc if http_error else (getattr(exc, "reason", None) or exc)
    if on_event:
        on_event({"event": "download_failed", "url": url, "error": str(reason)})
    return f"{url}: {reason}"


def _fetch_from_mirrors(
    name: str, urls: list[str], path: Path, md5: str, on_progress, on_event, timeout
) -> None:
    """Fetch one file of ``name`` to ``path`` from the first mirror that serves it whole.

    A disk error stops at once (WriteError); when every mirror fails, the failure is remembered
    and a DataNotFoundError lists each mirror's reason.
    """
    filename = path.name
    failures = []
    for base in urls:
        url = base + filename
        if on_event:
            on_event({"event": "download", "file": filename, "url": url})
        try:
            _fetch(url, path, md5, on_progress, timeout or env_seconds(_TIMEOUT_ENV, 10.0))
            return
        except OSError as exc:
            if exc.errno in _DISK_ERRORS:  # our side, not the mirror's: stop, say so
                raise WriteError(
                    f"cannot write {path}: {exc.strerror}",
                    hint="nothing partial was kept; files already complete stay in "
                    f"{path.parent}; free space and run `lenet data download {name}` again",
                ) from None
            failures.append(_reason(url, exc, on_event))
        except (ValueError, http.client.HTTPException) as exc:
            failures.append(_reason(url, exc, on_event))
    remember_failure(name, "; ".join(failures))
    raise DataNotFoundError(
        f"could not download {name} ({filename}); tried: " + "; ".join(failures),
        hint=f"set LENET_MIRRORS=URL[,URL] to other mirrors, `lenet data import {name} "
        f"DIR` from local files, or `--data random`",
    )


def download(
    name: str,
    *,
    mirrors: Sequence[str] | None = None,
    dest: str | Path | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
    on_event: Callable[[dict], None] | None = None,
    timeout: float | None = None,
) -> Located:
    """Fetch the four files of ``name`` into ``dest`` (default: the user cache) and return them.

    Files already there with the published checksum are kept. ``on_progress(done, total)``
    reports bytes of the current file (total may be None); ``on_event`` gets
    ``{"event": "download", "file", "url"}`` before each transfer and
    ``{"event": "download_failed", "url", "error"}`` when a mirror fails. ``timeout`` bounds
    the connection and each read (default ``LENET_DOWNLOAD_TIMEOUT``, 10 s). A failure is
    remembered (reach.py) so that the default data does not retry for a while; success clears it.
    """
    spec = SPECS.get(name)
    if spec is None or not spec.mirrors:
        downloadable = ", ".join(n for n, s in SPECS.items() if s.mirrors)
        raise UsageError(f"{name!r} cannot be downloaded", hint=f"downloadable: {downloadable}")
    target = Path(dest) if dest is not None else cache_dir(name)
    if offline():
        raise DataNotFoundError(
            f"not downloading {name}: LENET_OFFLINE is set",
            hint=f"unset LENET_OFFLINE, or `lenet data import {name} DIR` from local files",
        )
    urls = mirrors_for(name, mirrors)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create {target}: {exc.strerror or exc}") from None
    for filename, md5 in spec.md5.items():
        path = target / filename
        if not (path.is_file() and md5_file(path) == md5):
            _fetch_from_mirrors(name, urls, path, md5, on_progress, on_event, timeout)
    forget_failure(name)
    found = find_source(name, target)
    if found is None:  # cannot happen unless someone deletes files meanwhile
        raise DataNotFoundError(f"downloaded {name} but its files vanished from {target}")
    return Located(name, "cache" if dest is None else "--data-dir", found.directory, found.files)
