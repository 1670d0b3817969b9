"""Shared fixtures. Every test runs with a private user cache and no network."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]  # the repository: configs/, benchmarks/, README.md
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"  # real MNIST beside the checkout


@pytest.fixture(autouse=True)
def _isolated_data_env(tmp_path_factory, monkeypatch):
    """Keep tests out of the real ~/.cache and off the network (the data layer's settings)."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("LENET_OFFLINE", "1")
    for name in ("LENET_DATA_DIR", "LENET_MIRRORS"):
        monkeypatch.delenv(name, raising=False)
    return cache


@pytest.fixture(scope="session")
def random_run(tmp_path_factory):
    """The run directory of one short training run on random data (for evaluate and predict)."""
    args = "--data random --device cpu --threads 1 --epochs 1 --batch-size 256"
    return _train(tmp_path_factory.mktemp("runs"), args, "r")


def _train(out, args: str, name: str):
    """`lenet train ARGS --out OUT --name NAME`, checked; the run directory."""
    from typer.testing import CliRunner

    from lenet_cli.cli import app

    result = CliRunner().invoke(app, ["train", *args.split(), "--out", str(out), "--name", name])
    assert result.exit_code == 0, result.output
    return out / name


def write_idx(path, array, magic: int, gz: bool | None = None) -> None:
    """Write ``array`` (uint8) as an IDX file; gzip when the name ends in .gz (or gz=True)."""
    import gzip
    import struct

    import numpy as np

    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    gz = str(path).endswith(".gz") if gz is None else gz
    with open(path, "wb") as f:
        f.write(gzip.compress(data, compresslevel=1) if gz else data)


@pytest.fixture
def idx_set(tmp_path):
    """make(directory, n_train=50, n_test=20, gz=True) -> dir holding a valid synthetic IDX set."""
    import numpy as np

    def make(directory=None, n_train: int = 50, n_test: int = 20, gz: bool = True, seed: int = 0):
        directory = tmp_path / "idx" if directory is None else directory
        directory.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        ext = ".gz" if gz else ""
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, n, dtype=np.uint8)
            write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", images, 0x803)
            write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", labels, 0x801)
        return directory

    return make


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory):
    """A 20-step run on the bundled MNIST sample (for the picture commands)."""
    args = "--data mnist-sample --device cpu --threads 1 --epochs 1 --max-steps 20"
    return _train(tmp_path_factory.mktemp("sample-runs"), args, "s")


def check_png(path, min_size=(300, 200), max_size=(3000, 3000)) -> None:
    """A PNG that Pillow opens, of a sensible size, and not blank (its pixels vary)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG"
        w, h = img.size
        pixels = np.asarray(img.convert("L"), dtype=np.float32)
    assert min_size[0] <= w <= max_size[0] and min_size[1] <= h <= max_size[1], (w, h)
    assert pixels.std() > 10, pixels.std()


def check_terminal_text(text: str, width: int = 80) -> None:
    """Fits ``width`` columns and holds no control characters (as in a pipe)."""
    for line in text.splitlines():
        assert len(line) <= width, repr(line)
        assert all(ch.isprintable() for ch in line), repr(line)


def checkpoint_payload(seed: int = 0) -> dict:
    """A complete checkpoint payload of a fresh tutorial net (seeded)."""
    import torch

    from lenet_cli.model import build_model

    torch.manual_seed(seed)
    model = build_model("tutorial")
    return {
        "arch": "tutorial",
        "model": model.state_dict(),
        "mean": 0.13,
        "std": 0.31,
        "data": "mnist",
        "config": {"lr": 0.1, "name": None},
        "epoch": 1,
        "step": 10,
        "rng": {"torch": torch.get_rng_state(), "data_generator": torch.Generator().get_state()},
    }


def raw_checkpoint(path, payload: dict) -> None:
    """A checkpoint with a valid trailer but any payload (save_checkpoint checks too much)."""
    import hashlib
    import io

    import torch

    from lenet_cli.runs.checkpoint import _MAGIC

    buffer = io.BytesIO()
    torch.save({"format": "lenet-cli-checkpoint", "version": 1, **payload}, buffer)
    data = buffer.getvalue()
    path.write_bytes(data + _MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n")


def for_thread_counts(fn):
    """fn()'s results with 1, 2 and 3 threads."""
    import torch

    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            outs.append(fn())
        return outs
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def reading_run(tmp_path_factory):
    """A model that reads digits (configs/quick.toml on the bundled sample, 4 epochs: about 90%
    on its test set), for `lenet serve`'s tests, where a drawn 1 and 0 must come out right."""
    args = f"--config {REPO / 'configs' / 'quick.toml'} --epochs 4 --threads 1 --progress none"
    return _train(tmp_path_factory.mktemp("reading-runs"), args, "q")


def mnist_sample_digits(n: int, split: str = "t10k"):
    """The first ``n`` digits of the bundled MNIST sample ([n, 28, 28] uint8) and their labels."""
    import gzip

    import numpy as np

    sample = REPO / "lenet_cli" / "data" / "mnist_sample"
    images = gzip.decompress((sample / f"{split}-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((sample / f"{split}-labels-idx1-ubyte.gz").read_bytes())
    digits = np.frombuffer(images, dtype=np.uint8, offset=16)[: n * 784].reshape(n, 28, 28)
    return digits, np.frombuffer(labels, dtype=np.uint8, offset=8)[:n].astype(int)


class Server:
    """`lenet serve ARGS --port 0` in a subprocess: its URL (from the start line) and stderr."""

    def __init__(self, *args: str, cwd=None) -> None:
        import re
        import subprocess
        import sys
        import threading

        cmd = [sys.executable, "-m", "lenet_cli", "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, cwd=cwd, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.url = ""
        for line in self.proc.stderr:
            self.lines.append(line)
            found = re.search(r"(http://\S+/)", line)
            if found:
                self.url = found.group(1)
                break
        assert self.url, f"lenet serve exited {self.proc.wait()}: {''.join(self.lines)}"
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self, sig=None, timeout: float = 10.0) -> int:
        """Send ``sig`` (SIGINT by default) and wait; the exit code."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT if sig is None else sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._reader.join(timeout=5)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


# Tests that need an optional extra carry `@pytest.mark.extra("NAME")` (NAME as in pyproject.toml's
# [project.optional-dependencies]): where one of its packages is not installed, the test skips
# and the reason names the extra and the command that installs it. README's set-up installs
# `[test,dev]` only, so a newcomer's `python3 -m pytest` passes with these skipped.
def _extra_missing(name: str) -> list[str]:
    """The packages of extra ``name`` that are not installed (a name pyproject lacks: an error)."""
    import importlib.metadata
    import re

    from lenet_cli.config import tomllib

    with open(REPO / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    if name not in extras:
        raise pytest.UsageError(f"@pytest.mark.extra({name!r}): pyproject.toml has no such extra")
    missing = []
    for requirement in extras[name]:
        package = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
        try:
            importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
    return missing


def pytest_runtest_setup(item):
    for mark in item.iter_markers("extra"):
        missing = _extra_missing(mark.args[0])
        if missing:
            name = mark.args[0]
            pytest.skip(
                f"needs the extra lenet-cli[{name}] ({', '.join(missing)} not installed): "
                f"pip install 'lenet-cli[{name}]'"
            )


def _record_skip_for_extra(report) -> None:
    """With LENET_SKIPPED_FOR_EXTRAS=FILE, the id of each test or module skipped for want of an
    extra (its reason names `lenet-cli[`) is appended to FILE: .ci/run runs them again once it
    has installed the extras."""
    import os

    path = os.environ.get("LENET_SKIPPED_FOR_EXTRAS")
    if path and report.skipped and "lenet-cli[" in str(report.longrepr):
        with open(path, "a", encoding="utf-8") as f:
            f.write(report.nodeid + "\n")


def pytest_runtest_logreport(report):
    _record_skip_for_extra(report)


def pytest_collectreport(report):
    _record_skip_for_extra(report)
