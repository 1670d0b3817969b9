"""The default data never waits on the network: a bounded probe and a remembered failure.
Mirrors are sockets on 127.0.0.1 that the tests open: one that never accepts (a full backlog),
one that accepts and never answers; never the real network."""

from __future__ import annotations

import json
import select
import socket
import time

import pytest

from lenet_cli.data import load_dataset, reach


@pytest.fixture
def network(monkeypatch):
    monkeypatch.delenv("LENET_OFFLINE", raising=False)
    monkeypatch.setenv("LENET_CONNECT_TIMEOUT", "0.5")


@pytest.fixture
def silent():
    """A mirror that accepts connections and never answers; counts the connections."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.setblocking(False)
    accepted = []

    def count() -> int:
        while True:
            try:
                accepted.append(srv.accept()[0])
            except BlockingIOError:
                return len(accepted)

    yield f"http://127.0.0.1:{srv.getsockname()[1]}/", count
    for c in accepted:
        c.close()
    srv.close()


@pytest.fixture
def blackhole():
    """A mirror whose connects hang: a listening socket whose backlog is already full."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the accept queue; later SYNs are dropped, so connect() hangs
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    # the queue is full once one filler's connect has completed (its socket turns writable)
    _, connected, _ = select.select([], fillers, [], 10)
    assert connected, "no connection reached the listening socket"
    yield f"http://127.0.0.1:{port}/"
    for s in fillers:
        s.close()
    srv.close()


def _notice(events) -> str:
    (notice,) = [e["notice"] for e in events if e["event"] == "fallback"]
    return notice


def test_default_data_with_hanging_mirrors_falls_back_quickly_then_remembers(
    network, blackhole, monkeypatch
):
    monkeypatch.setenv("LENET_MIRRORS", f"{blackhole},{blackhole}")
    events = []
    started = time.monotonic()
    ds = load_dataset("mnist", "test", explicit=False, on_event=events.append)
    first = time.monotonic() - started
    assert ds.name == "mnist-sample" and "no mirror answered" in _notice(events)
    assert reach.remembered_failure("mnist") is not None
    events.clear()
    started = time.monotonic()
    load_dataset("mnist", "test", explicit=False, on_event=events.append)
    second = time.monotonic() - started
    assert "the mirrors failed at" in _notice(events) and "lenet data download mnist" in _notice(
        events
    )
    assert not [e for e in events if e["event"] == "download"]
    # bounded: the probe's deadline (0.5 s) plus decoding, far below the 10 s read timeout
    assert first < 8 and second < first + 2


def test_default_data_with_a_silent_mirror_uses_the_short_timeout(network, silent, monkeypatch):
    url, connections = silent
    monkeypatch.setenv("LENET_MIRRORS", url)
    events = []
    started = time.monotonic()
    ds = load_dataset("mnist", "train", explicit=False, on_event=events.append)
    assert ds.name == "mnist-sample" and time.monotonic() - started < 8
    assert "no mirror answered" in _notice(events) and "no answer within 0.5 s" in _notice(events)
    assert not [e for e in events if e["event"].startswith("download")]  # the probe alone
    before = connections()
    assert before >= 1
    load_dataset("mnist", "train", explicit=False)
    assert connections() == before  # remembered: no new connection at all


def test_old_or_broken_memory_is_ignored(network, tmp_path):
    reach.remember_failure("mnist", "x")
    path = reach.cache_root() / "mnist.download-failed.json"
    assert reach.remembered_failure("mnist") is not None
    assert reach.remembered_failure("mnist", now=time.time() + reach.RETRY_AFTER_S + 1) is None
    for junk in ("{", "[]", json.dumps({"time": "soon", "reason": "x"}), "\xff" * 10):
        path.write_text(junk, encoding="latin-1")
        assert reach.remembered_failure("mnist") is None
    path.write_text(json.dumps({"time": float("nan"), "reason": "x"}))
    assert reach.remembered_failure("mnist") is None
    path.write_text(json.dumps({"time": time.time() + 3600, "reason": "x"}))  # in the future
    assert reach.remembered_failure("mnist") is None


@pytest.mark.parametrize("value", ["abc", "-1", "0", "inf", "nan", "1e9"])
def test_bad_timeouts_in_the_environment_mean_the_default(monkeypatch, value):
    monkeypatch.setenv("LENET_CONNECT_TIMEOUT", value)
    monkeypatch.setenv("LENET_DOWNLOAD_TIMEOUT", value)
    assert reach.connect_timeout() == 1.5
    assert reach.env_seconds("LENET_DOWNLOAD_TIMEOUT", 10.0) == 10.0
    from typer.testing import CliRunner

    from lenet_cli.cli import app

    result = CliRunner().invoke(app, ["data", "list", "--no-checksums", "--json"])
    assert result.exit_code == 0, result.output


@pytest.fixture
def silent_mirrors():
    """make(n) -> n mirror URLs on 127.0.0.1 that accept connections and never answer (as a
    proxy or firewall that black-holes does): the kernel completes each connection into the
    listen backlog, and nothing ever reads or replies."""
    servers = []

    def make(n: int) -> list[str]:
        for _ in range(n):
            srv = socket.socket()
            srv.bind(("127.0.0.1", 0))
            srv.listen(16)
            servers.append(srv)
        return [f"http://127.0.0.1:{s.getsockname()[1]}/mnist/" for s in servers[-n:]]

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def good_mirror(idx_set, monkeypatch):
    """A mirror on 127.0.0.1 serving a small IDX set, whose MD5s become mnist's published ones."""
    import hashlib
    import http.server
    import threading
    from dataclasses import replace

    from lenet_cli.data.sources import SPECS

    files = {p.name: p.read_bytes() for p in idx_set(n_train=30, n_test=10).iterdir()}
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in files.items()}
    monkeypatch.setitem(SPECS, "mnist", replace(SPECS["mnist"], md5=md5))

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, body: bool) -> None:
            data = files.get(self.path.rsplit("/", 1)[-1])
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self):
            self._answer(True)

        def do_HEAD(self):
            self._answer(False)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/mnist/"
    srv.shutdown()
    srv.server_close()


def _timed_default_load(**env) -> tuple[float, object, list[dict]]:
    events: list[dict] = []
    started = time.monotonic()
    ds = load_dataset("mnist", "train", explicit=False, on_event=events.append)
    return time.monotonic() - started, ds, events


def test_mirrors_that_never_answer_cost_the_first_default_run_under_2_s(
    silent_mirrors, monkeypatch
):
    """The default deadline (no LENET_CONNECT_TIMEOUT): three black-holing mirrors are asked at
    once, so the first run that meets them waits one short deadline, not each mirror's timeout
    in turn."""
    monkeypatch.delenv("LENET_CONNECT_TIMEOUT", raising=False)
    offline, ds, _ = _timed_default_load()  # LENET_OFFLINE=1 (conftest); decodes the sample once
    assert ds.name == "mnist-sample"
    monkeypatch.delenv("LENET_OFFLINE")
    monkeypatch.setenv("LENET_MIRRORS", ",".join(silent_mirrors(3)))
    online, ds, events = _timed_default_load()
    assert ds.name == "mnist-sample" and "no mirror answered" in _notice(events)
    assert online - offline < 2.0, (online, offline)
    assert reach.remembered_failure("mnist") is not None


def test_a_mirror_that_answers_is_used_without_waiting_for_the_silent_ones(
    silent_mirrors, good_mirror, monkeypatch
):
    monkeypatch.delenv("LENET_OFFLINE")
    monkeypatch.setenv("LENET_CONNECT_TIMEOUT", "5")  # the deadline is not what ends the wait
    monkeypatch.setenv("LENET_MIRRORS", ",".join([*silent_mirrors(2), good_mirror]))
    seconds, ds, events = _timed_default_load()
    assert ds.name == "mnist" and len(ds) == 30  # downloaded from the third mirror
    urls = {e["url"] for e in events if e["event"] == "download"}
    assert urls and all(u.startswith(good_mirror) for u in urls)  # the silent ones not waited on
    assert seconds < 4, seconds
