"""Checkpoints: round trip, corruption and unsafe pickles refused, atomic under SIGKILL."""

from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch
from conftest import checkpoint_payload, raw_checkpoint

from lenet_cli.errors import CheckpointError, NonFiniteLossError
from lenet_cli.runs.checkpoint import load_checkpoint, load_model, save_checkpoint


def test_round_trip_and_load_model(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", checkpoint_payload())
    loaded = load_checkpoint(tmp_path)  # a run directory: best.pt else last.pt
    assert loaded["step"] == 10 and loaded["config"] == {"lr": 0.1, "name": None}
    model, meta = load_model(path, torch.device("cpu"))
    assert not model.training and meta["arch"] == "tutorial" and meta["mean"] == 0.13
    assert torch.equal(model.conv1.weight, checkpoint_payload()["model"]["conv1.weight"])
    # plain torch can still read it (the checksum trailer is ignored by the zip reader)
    assert torch.load(path, weights_only=True)["format"] == "lenet-cli-checkpoint"


def test_every_single_flipped_byte_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", checkpoint_payload())
    data = path.read_bytes()
    # the first bytes (zip header), inside the pickle, inside tensor data, the zip central
    # directory at the end, and the trailer itself
    positions = [
        0,
        5,
        100,
        len(data) // 3,
        len(data) // 2,
        len(data) - 200,
        len(data) - 90,
        len(data) - 40,
        len(data) - 2,
    ]
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 0x01
        (tmp_path / "b.pt").write_bytes(bytes(bad))
        with pytest.raises(CheckpointError):
            load_checkpoint(tmp_path / "b.pt")


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", checkpoint_payload())
    (tmp_path / "t.pt").write_bytes(path.read_bytes()[:1000])
    buffer = io.BytesIO()
    torch.save({"model": {}}, buffer)
    (tmp_path / "plain.pt").write_bytes(buffer.getvalue())
    for name in ("t.pt", "plain.pt", "missing.pt"):
        with pytest.raises(CheckpointError):
            load_checkpoint(tmp_path / name)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused_without_running(tmp_path):
    """Even with a valid checksum trailer (the hash is no signature), weights_only refuses."""
    import hashlib

    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"format": "lenet-cli-checkpoint", "version": 1, "x": _Evil(str(marker))}, buffer)
    body = buffer.getvalue()
    with zipfile.ZipFile(io.BytesIO(body)) as z:  # really a code-running pickle inside
        assert b"system" in z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    path = tmp_path / "evil.pt"
    path.write_bytes(body + b"\nLENET-SHA256:" + hashlib.sha256(body).hexdigest().encode() + b"\n")
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)
    assert not marker.exists()
    # and a raw (non-zip) pickle
    path.write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_non_finite_weights_are_never_written(tmp_path):
    payload = checkpoint_payload()
    payload["model"]["fc3.bias"][0] = float("nan")
    with pytest.raises(NonFiniteLossError):
        save_checkpoint(tmp_path / "x.pt", payload)
    assert list(tmp_path.iterdir()) == []


_SAVER = """
import sys, torch
from lenet_cli.runs.checkpoint import save_checkpoint
from lenet_cli.model import build_model
big = {"arch": "tutorial", "model": build_model("tutorial").state_dict(), "mean": 0.1,
       "std": 0.3, "data": "mnist", "epoch": 0, "step": 0, "blob": torch.randn(4_000_000)}
i = 0
print("ready", flush=True)
while True:
    i += 1
    big["step"] = i
    save_checkpoint(sys.argv[1], big)
"""


@pytest.mark.slow
def test_sigkill_while_saving_leaves_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {**checkpoint_payload(), "n": 0})
    proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    seen, deadline = set(), time.monotonic() + 120
    while len(seen) < 4:  # loads while saves go on, until four different saves were read
        assert proc.poll() is None and time.monotonic() < deadline
        seen.add(load_checkpoint(path)["step"])  # at any moment, a complete checkpoint is there
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(path)["step"] >= 0


def test_resume_from_an_incomplete_or_mismatched_checkpoint_is_exit_6(tmp_path):
    from typer.testing import CliRunner

    from lenet_cli.cli import app

    payload = checkpoint_payload()
    lenet5 = {"arch": "lenet5", "data": "random", "batch_size": 64}
    cases = {
        "no-keys.pt": {},
        "other-arch.pt": {  # the config says lenet5, the weights are the tutorial's
            **payload,
            "config": lenet5,
            "optimizer": {},
            "scheduler": {},
            "state": {},
        },
    }
    for name, content in cases.items():
        raw_checkpoint(tmp_path / name, content)
        result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / name)])
        assert result.exit_code == 6, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0]
        assert "cannot be resumed" in lines[0] or "refusing checkpoint" in lines[0]
        assert "internal error" not in result.stderr


@pytest.mark.parametrize("kind", ["png", "random"])
def test_a_picture_or_random_bytes_as_checkpoint_is_not_called_code(tmp_path, kind):
    from PIL import Image
    from typer.testing import CliRunner

    from lenet_cli.cli import app

    path = tmp_path / "weights.pt"
    if kind == "png":  # `lenet predict --checkpoint digit.png digit.png`: arguments mixed up
        Image.new("L", (28, 28), 255).save(path, format="PNG")
    else:
        path.write_bytes(bytes(range(154, 256)) * 10)
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(path), "--device", "cpu"])
    assert result.exit_code == 6, result.output
    (line,) = result.stderr.strip().splitlines()
    assert str(path) in line and "not a torch.save file" in line, line
    assert "run code" not in line and "weights_only" not in line, line
