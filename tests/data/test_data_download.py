"""Downloads against an HTTP server on 127.0.0.1 that the tests start: never the real network."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.data import download, load_dataset, reach
from lenet_cli.data.sources import SPECS, cache_dir
from lenet_cli.errors import DataNotFoundError


@pytest.fixture
def files(idx_set):
    d = idx_set(n_train=30, n_test=10)
    return {p.name: p.read_bytes() for p in d.iterdir()}


@pytest.fixture
def published(monkeypatch, files):
    """Pretend the test files are the published MNIST files (their MD5s become the spec's)."""
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in files.items()}
    monkeypatch.setitem(SPECS, "mnist", replace(SPECS["mnist"], md5=md5))
    monkeypatch.delenv("LENET_OFFLINE", raising=False)
    return md5


@pytest.fixture
def server(files):
    """Serves /good/<file>, /bad/<file> (wrong bytes), /cut/<file> (connection dropped midway)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            _, mode, name = self.path.split("/", 2)
            data = files.get(name)
            if data is None or mode not in ("good", "bad", "cut"):
                self.send_error(404)
                return
            if mode == "bad":
                data = data[::-1]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2] if mode == "cut" else data)
            if mode == "cut":
                self.close_connection = True

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing-listens-here/"


def _cache_listing():
    d = cache_dir("mnist")
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_download_success(published, server, files):
    events, progress = [], []
    located = download(
        "mnist",
        mirrors=[f"{server}/good/"],
        on_event=events.append,
        on_progress=lambda d, t: progress.append((d, t)),
    )
    assert located.directory == cache_dir("mnist")
    assert _cache_listing() == sorted(files)
    for name, data in files.items():
        assert (cache_dir("mnist") / name).read_bytes() == data
    assert [e["event"] for e in events] == ["download"] * 4
    assert progress[-1][0] == progress[-1][1]  # reached 100%
    # the next load finds it in the cache, no network needed
    ds = load_dataset("mnist", "train", download=False)
    assert len(ds) == 30 and ds.source == str(cache_dir("mnist"))


def test_checksum_mismatch_leaves_nothing(published, server):
    with pytest.raises(DataNotFoundError, match="checksum mismatch") as info:
        download("mnist", mirrors=[f"{server}/bad/"])
    assert info.value.exit_code == 4
    assert _cache_listing() == []


def test_dead_first_mirror_falls_through(published, server, files):
    events = []
    download(
        "mnist",
        mirrors=[_dead_url(), f"{server}/missing/", f"{server}/good/"],
        on_event=events.append,
    )
    assert _cache_listing() == sorted(files)
    failed = [e for e in events if e["event"] == "download_failed"]
    assert len(failed) == 8 and "404" in failed[1]["error"]


def test_cut_transfer_leaves_no_partial_file(published, server):
    with pytest.raises(DataNotFoundError) as info:
        download("mnist", mirrors=[f"{server}/cut/"])
    assert "transfer cut off" in info.value.message
    assert _cache_listing() == []


def test_env_mirrors(published, server, monkeypatch, files):
    monkeypatch.setenv("LENET_MIRRORS", f"{_dead_url()}, {server}/good")
    download("mnist")
    assert _cache_listing() == sorted(files)


def test_offline_refuses(monkeypatch):
    monkeypatch.setenv("LENET_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="LENET_OFFLINE"):
        download("mnist", mirrors=["http://127.0.0.1:9/"])


def test_load_dataset_downloads_when_missing(published, server, monkeypatch):
    monkeypatch.setenv("LENET_MIRRORS", f"{server}/good/")
    events = []
    ds = load_dataset("mnist", "test", on_event=events.append)
    assert len(ds) == 10
    kinds = {e["event"] for e in events}
    assert {"download", "download_progress", "found", "decoded"} <= kinds


def test_all_mirrors_fail_explicit_raises_default_falls_back(published, server, monkeypatch):
    monkeypatch.setenv("LENET_MIRRORS", f"{server}/bad/")
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", "train")
    msg = info.value.message
    assert "checksum mismatch" in msg and "cache" in msg
    assert "lenet data import mnist DIR" in info.value.hint and "--data random" in info.value.hint
    ds = load_dataset("mnist", "train", explicit=False)
    assert ds.name == "mnist-sample" and len(ds) == 5000 and ds.notice
    assert _cache_listing() == []


def test_explicit_download_retries_and_success_forgets(published, server, files):
    reach.remember_failure("mnist", "earlier failure")
    result = CliRunner().invoke(app, ["data", "download", "mnist", "--mirror", f"{server}/good/"])
    assert result.exit_code == 0, result.output
    assert reach.remembered_failure("mnist") is None


def test_a_full_disk_is_a_write_error_not_a_mirror_failure(published, server, monkeypatch):
    """ENOSPC while saving is our side (exit 11), not the mirror's: it stops at once, keeps no
    partial file, and is not remembered as a network failure."""
    import contextlib
    import errno

    from lenet_cli.data import fetch
    from lenet_cli.errors import WriteError

    @contextlib.contextmanager
    def full(path):
        class Out:
            def write(self, data):
                raise OSError(errno.ENOSPC, "No space left on device")

        yield Out()

    monkeypatch.setattr(fetch, "atomic_write", full)
    events = []
    with pytest.raises(WriteError, match="No space left") as info:
        download("mnist", mirrors=[f"{server}/good/", f"{server}/good/"], on_event=events.append)
    assert info.value.exit_code == 11
    assert [e["event"] for e in events] == ["download"]  # the second mirror was not tried
    assert reach.remembered_failure("mnist") is None and _cache_listing() == []
    import importlib

    monkeypatch.setattr(importlib.import_module("lenet_cli.data.verify"), "atomic_write", full)
    from lenet_cli.data.sources import BUNDLED_DIR

    result = CliRunner().invoke(app, ["data", "import", "mnist", str(BUNDLED_DIR)])
    assert result.exit_code == 11 and "No space left" in result.stderr
