"""The real `lenet serve` in a subprocess: it answers 200 test digits as `lenet predict` does,
keeps serving after bad input and under 16 clients, stops with exit 0 on SIGINT and SIGTERM,
and says clearly when it cannot start (exit 16, exit 14)."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from conftest import Server, mnist_sample_digits
from PIL import Image
from typer.testing import CliRunner

from lenet_cli.cli import app

pytest.importorskip("fastapi", reason="fastapi is not installed (pip install 'lenet-cli[serve]')")
pytest.importorskip("uvicorn", reason="uvicorn is not installed (pip install 'lenet-cli[serve]')")

pytestmark = pytest.mark.slow


def ask(url: str, method: str, path: str, body: bytes = b"", content_type: str = "image/png"):
    """(status, JSON answer) over a fresh connection."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def digit_png(digit) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(255 - digit).resize((112, 112), Image.BICUBIC).save(buffer, format="PNG")
    return buffer.getvalue()


def test_serves_200_test_digits_as_lenet_predict_and_stops_on_sigint(reading_run, tmp_path):
    digits, _ = mnist_sample_digits(200)
    files = []
    for k, digit in enumerate(digits):
        files.append(tmp_path / f"d{k:03d}.png")
        files[-1].write_bytes(digit_png(digit))
    cli = CliRunner().invoke(
        app, ["predict", *map(str, files), "--checkpoint", str(reading_run), "--json", "--preview"]
    )
    assert cli.exit_code == 0, cli.output
    expected = json.loads(cli.stdout)["results"]

    server = Server("--checkpoint", str(reading_run))
    try:
        # the start line as README.md and docs/serve.md show it
        start = rf"serving {reading_run}/best.pt \(tutorial, test accuracy \d+\.\d\d%\) at "
        assert re.match(start + r"http://127\.0\.0\.1:\d+/ \(Ctrl-C stops\)$", server.lines[-1])
        assert ask(server.url, "GET", "/healthz", content_type="") == (200, {"status": "ok"})
        for path, want in zip(files, expected, strict=True):
            status, got = ask(server.url, "POST", "/api/predict", path.read_bytes())
            assert status == 200, got
            assert got["predicted"] == want["predicted"] and got["input"] == want["input"]
            assert got["probabilities"] == pytest.approx(want["probabilities"], rel=1e-5, abs=1e-7)

        # bad input: a JSON 4xx each, and the server goes on
        for body, content_type, status in [
            (b"text", "text/plain", 415),
            (b"", "image/png", 400),
            (b"not a picture", "image/jpeg", 400),
            (b"\0" * (2 * 1024 * 1024 + 1), "image/png", 413),
        ]:
            code, answer = ask(server.url, "POST", "/api/predict", body, content_type)
            assert code == status and "error" in answer
        assert ask(server.url, "GET", "/api/predict", content_type="")[0] == 405

        # 16 clients at once, 160 requests: every one answered, as alone
        def one(k: int):
            return ask(server.url, "POST", "/api/predict", files[k % 40].read_bytes())

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(one, range(160)))
        for k, (status, got) in enumerate(answers):
            assert status == 200, got
            assert got["predicted"] == expected[k % 40]["predicted"]
        assert server.proc.poll() is None
    finally:
        t0 = time.monotonic()
        code = server.stop(signal.SIGINT)
    assert code == 0, server.stderr
    assert time.monotonic() - t0 < 5
    assert "stopped by SIGINT" in server.stderr
    assert "Traceback" not in server.stderr


def test_sigterm_ends_it_with_exit_0(reading_run):
    server = Server("--checkpoint", str(reading_run))
    assert ask(server.url, "GET", "/healthz", content_type="")[0] == 200
    t0 = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0, server.stderr
    assert time.monotonic() - t0 < 5
    assert "stopped by SIGTERM" in server.stderr


def test_a_busy_port_is_exit_16(reading_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "lenet_cli",
                "serve",
                "--checkpoint",
                str(reading_run),
                "--port",
                str(port),
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 16, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "pick another --port" in done.stderr
    assert "Traceback" not in done.stderr


def test_newest_run_by_default_and_a_warning_off_loopback(reading_run, tmp_path):
    shutil.copytree(reading_run, tmp_path / "runs" / "mine")
    server = Server("--host", "0.0.0.0", cwd=tmp_path)
    try:
        assert "using the newest run" in server.stderr and "mine" in server.stderr
        assert "warning: --host 0.0.0.0 is not loopback" in server.stderr
        port = urlsplit(server.url).port
        assert ask(f"http://127.0.0.1:{port}/", "GET", "/healthz", content_type="")[0] == 200
    finally:
        assert server.stop() == 0, server.stderr


def test_without_the_extra_it_says_which_to_install(monkeypatch, reading_run):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # `import fastapi` now fails
    result = CliRunner().invoke(app, ["serve", "--checkpoint", str(reading_run)])
    assert result.exit_code == 14
    assert "fastapi" in result.output and "lenet-cli[serve]" in result.output


def test_lenet_help_imports_no_web_framework():
    code = "import sys, lenet_cli.cli; print(sorted({'fastapi', 'uvicorn'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_benchmark_reports_rate_and_latency(reading_run):
    from conftest import REPO

    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "serve.py"),
            "--checkpoint",
            str(reading_run),
            "--requests",
            "40",
            "--clients",
            "4",
            "--json",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["requests"] == 40 and result["failed"] == 0 and result["server_exit"] == 0
    assert result["requests_per_s"] > 0 and 0 < result["p50_ms"] <= result["p99_ms"]


def test_an_address_of_another_machine_is_exit_16_naming_the_host():
    from lenet_cli.errors import ServiceError
    from lenet_cli.serve.runner import listen

    with pytest.raises(ServiceError) as caught:
        listen("192.0.2.1", 0)  # TEST-NET-1: an address no interface here holds
    text = f"{caught.value} ({caught.value.hint})"
    assert caught.value.exit_code == 16 and "192.0.2.1" in text
    assert "not an address of this machine" in text and "1023" not in text, text


def test_it_serves_with_stdin_and_stdout_closed(reading_run):
    cmd = [sys.executable, "-m", "lenet_cli", "serve", "--port", "0"]
    wrapped = ["bash", "-c", 'exec <&- >&-; exec "$@"', "serve", *cmd]
    proc = subprocess.Popen([*wrapped, "--checkpoint", str(reading_run)], stderr=subprocess.PIPE)
    try:
        first = proc.stderr.readline().decode()
        found = re.search(r"(http://\S+/)", first)
        assert found, first + proc.stderr.read().decode()
        assert ask(found.group(1), "GET", "/healthz", content_type="")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        rest = proc.stderr.read().decode()
        assert "stopped by SIGTERM" in rest and "error" not in rest, rest
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ctrl_c_while_it_starts_is_one_line_and_exit_130(reading_run):
    """A real SIGINT at moments through start-up (the package's imports, Typer reading options,
    FastAPI and torch importing, the model loading): one line and exit 130, or, once it serves,
    its usual stop; never a traceback."""
    starter = (  # what the `lenet` script does, saying when the package's first import starts
        "import sys\n"
        "class Say:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'lenet_cli.config':\n"
        "            print('started', flush=True)\n"
        "sys.meta_path.insert(0, Say())\n"
        "sys.argv = ['/venv/bin/lenet', *sys.argv[1:]]\n"
        "from lenet_cli.cli import main\n"
        "sys.exit(main())\n"
    )
    args = ["serve", "--port", "0", "--checkpoint", str(reading_run)]
    early = 0
    for delay in (0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5):
        proc = subprocess.Popen(
            [sys.executable, "-c", starter, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout.readline() == "started\n"
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert "Traceback" not in err, (delay, err)
        if proc.returncode == 130:
            assert err == "error: interrupted\n", (delay, err)
            early += 1
        else:  # it was serving already
            assert proc.returncode == 0 and err.endswith("stopped by SIGINT\n"), (delay, err)
    assert early >= 3  # at least the first moments fell before it served


def test_a_ctrl_c_as_it_says_its_address_stops_it_as_one_while_it_serves():
    """SIGINT from the moment the address is said, before uvicorn takes the signals over: the
    server stops as it starts, and run() returns SIGINT (the CLI's exit 0, "stopped by SIGINT")
    instead of serving on with the Ctrl-C lost."""
    import threading

    import torch

    from lenet_cli.serve.runner import listen, run

    async def app(scope, receive, send):  # never asked: it stops before any request
        raise AssertionError("served")

    threads, before = torch.get_num_threads(), signal.getsignal(signal.SIGINT)
    sock = listen("127.0.0.1", 0)
    again = threading.Timer(5, os.kill, (os.getpid(), signal.SIGINT))  # were the first one lost
    again.start()
    start = time.monotonic()
    try:
        stopped = run(app, sock, announce=lambda: os.kill(os.getpid(), signal.SIGINT))
    finally:
        again.cancel()
        torch.set_num_threads(threads)
    took = time.monotonic() - start
    assert stopped == signal.SIGINT and took < 4, (stopped, took)
    assert signal.getsignal(signal.SIGINT) is before and sock.fileno() == -1
