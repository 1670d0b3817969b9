"""Every example of README.md (each `$ ` line of its code blocks) runs as printed, in README's
order, in one temporary directory holding a copy of configs/, and exits 0; where README shows a
command's output for the tutorial's fixed seed, the command prints it.

Set-up a reader would have done first: `digit.png` (test digit 0 of the bundled sample, a 7),
and `runs/a`, `runs/b` for `lenet runs diff` (copies of runs/main). `lenet` is
`python -m lenet_cli`, `torchrun` is `python -m torch.distributed.run`. One example is
shortened, and only by flags added at its end: the sweep trains `--epochs 1 --max-steps 20` per
trial (8 trials of the 15-epoch recipe take minutes; the search is what the example shows).
`lenet serve` runs until its page answers, then gets the Ctrl-C README says stops it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow
EXACT = ("lenet forward", "lenet step")  # outputs fixed by the seed: README's lines are checked
SHORTENED = {"lenet sweep": ["--epochs", "1", "--max-steps", "20"]}
EXTRAS = {"lenet sweep": "sweep", "lenet serve": "serve", "--format onnx": "onnx"}


def _examples() -> list[tuple[str, list[str]]]:
    """(command, the output lines README prints under it) for each `$ ` line, in order."""
    found: list[tuple[str, list[str]]] = []
    for block in re.findall(
        r"^```[^\n]*\n(.*?)^```", (REPO / "README.md").read_text(), re.M | re.S
    ):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            elif found:
                found[-1][1].append(line)
    return found


def _params():
    for command, output in _examples():
        extra = next((x for key, x in EXTRAS.items() if key in command), None)
        marks = [pytest.mark.extra(extra)] if extra else []
        yield pytest.param(command, output, marks=marks, id=command[:60])


def _argv(command: str) -> list[str]:
    argv = shlex.split(command, comments=True)
    head = {"lenet": ["-m", "lenet_cli"], "torchrun": ["-m", "torch.distributed.run"]}
    assert argv[0] in head, f"README example of an unknown program: {command}"
    short = next((flags for key, flags in SHORTENED.items() if command.startswith(key)), [])
    return [sys.executable, *head[argv[0]], *argv[1:], *short]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    here = tmp_path_factory.mktemp("readme")
    shutil.copytree(REPO / "configs", here / "configs")
    _digit(here / "digit.png")
    return here


def _digit(path) -> None:
    """Test digit 0 of the bundled sample (a 7) as a PNG, white on black as MNIST stores it."""
    import gzip

    import numpy as np
    from PIL import Image

    from lenet_cli.data.sources import BUNDLED_DIR

    raw = gzip.decompress((BUNDLED_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
    Image.fromarray(np.frombuffer(raw, np.uint8, 28 * 28, offset=16).reshape(28, 28)).save(path)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}


@pytest.mark.parametrize(("command", "output"), list(_params()))
def test_readme_example_runs_as_printed(workspace, command, output):
    if command.startswith("lenet runs diff runs/a runs/b"):
        for name in ("a", "b"):
            if not (workspace / "runs" / name).exists():
                shutil.copytree(workspace / "runs" / "main", workspace / "runs" / name)
    if command.startswith("lenet serve"):
        _serve(workspace, command)
        return
    done = subprocess.run(_argv(command), cwd=workspace, env=_env(), capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    if command.startswith(EXACT):
        printed = " ".join((done.stdout + done.stderr).split())
        for line in output:
            if line.strip() and line.strip() != "...":
                assert " ".join(line.split()) in printed, line
    if command.startswith("lenet predict digit.png"):
        assert done.stdout.startswith("digit.png: 7 ("), done.stdout


def _serve(workspace, command: str) -> None:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8000)) == 0:
            pytest.skip("port 8000 is in use here: `lenet serve` as printed cannot listen")
    proc = subprocess.Popen(_argv(command), cwd=workspace, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:8000/", timeout=2) as page:
                    assert page.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.2)
        else:
            pytest.fail("lenet serve did not answer within 120 s")
        proc.send_signal(signal.SIGINT)  # README: "Ctrl-C stops"
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "http://127.0.0.1:8000/" in proc.stdout.read()
