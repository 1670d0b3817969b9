"""Data-parallel training: 2 gloo ranks on the CPU (torchrun, loopback) against 1 process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO

REPO = REPO
TRAIN = ["--data", "random", "--device", "cpu", "--out", "o", "--progress", "plain"]
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "LENET_DIST_TIMEOUT": "30"}


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
            "-m", "lenet_cli", "train", *TRAIN, *args]  # fmt: skip


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=240)


def _start_past_epoch_1(cmd: list[str], cwd: Path, name: str) -> subprocess.Popen:
    """Start ``cmd`` (training run ``name``, stderr to NAME.err) and return once its first
    epoch's metrics row is written."""
    log = open(cwd / f"{name}.err", "w")
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=log)
    metrics = cwd / "o" / name / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while not (metrics.exists() and metrics.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", weights_only=True)["model"]


def test_two_ranks_take_the_steps_of_one_process(tmp_path):
    args = ["--epochs", "1", "--max-steps", "6", "--batch-size", "64"]
    two = _run(_torchrun(*args, "--name", "two", "--json"), tmp_path)
    assert two.returncode == 0, two.stderr
    assert json.loads(two.stdout)["steps"] == 6  # one summary: rank 0's
    assert [ln.split()[:1] for ln in two.stderr.splitlines()].count(["1/1"]) == 1  # rank 0 only
    one_cmd = [sys.executable, "-m", "lenet_cli", "train", *TRAIN, *args, "--threads", "1"]
    one = _run([*one_cmd, "--name", "one"], tmp_path)
    assert one.returncode == 0, one.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["one", "two"]  # one run dir
    assert json.loads((tmp_path / "o" / "two" / "env.json").read_text())["ranks"] == 2
    rows = [json.loads((tmp_path / "o" / n / "metrics.jsonl").read_text()) for n in ("one", "two")]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "step"):
        assert rows[1][key] == pytest.approx(rows[0][key], rel=1e-5), key
    w1, w2 = _weights(tmp_path / "o" / "one"), _weights(tmp_path / "o" / "two")
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-6)


def test_sigint_stops_every_rank_and_resume_is_exact(tmp_path):
    args = ["--epochs", "3", "--batch-size", "8"]
    whole = _run(_torchrun(*args, "--name", "whole"), tmp_path)
    assert whole.returncode == 0, whole.stderr
    proc = _start_past_epoch_1(_torchrun(*args, "--name", "int"), tmp_path, "int")
    proc.send_signal(signal.SIGINT)  # to torchrun, which forwards it to both ranks
    proc.wait(timeout=120)
    err = (tmp_path / "int.err").read_text()
    assert err.count("error: interrupted by SIGINT") == 1, err  # said once, saved once
    step = torch.load(tmp_path / "o" / "int" / "last.pt", weights_only=True)["step"]
    assert 128 <= step < 3 * 128
    resumed = _run(_torchrun(*args, "--resume", "o/int"), tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    w1, w2 = _weights(tmp_path / "o" / "whole"), _weights(tmp_path / "o" / "int")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)  # bit for bit


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_one_gpu_rank_on_nccl(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1"]
    cmd += ["-m", "lenet_cli", "train", "--data", "mnist-sample", "--device", "cuda", "--out", "o"]
    result = _run([*cmd, "--epochs", "1", "--name", "g", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "o" / "g" / "env.json").read_text())["ranks"] == 1
    assert json.loads(result.stdout)["final"]["test_acc"] > 0.5


@pytest.mark.parametrize("launcher", ["torchrun", "nproc"])
def test_a_killed_rank_takes_the_other_down(tmp_path, launcher):
    """SIGKILL to rank 1: rank 0 says it lost its peers (exit 15, one line). torchrun itself
    exits 1 whatever failed; `lenet train --nproc 2` exits with the rank's 15."""
    args = ["--epochs", "20", "--batch-size", "8", "--name", "k"]
    if launcher == "torchrun":
        cmd = _torchrun(*args)
    else:
        cmd = [sys.executable, "-m", "lenet_cli", "train", *TRAIN, "--nproc", "2", *args]
    proc = _start_past_epoch_1(cmd, tmp_path, "k")
    torchrun = proc.pid if launcher == "torchrun" else _children(proc.pid)[0]
    rank1 = [pid for pid in _children(torchrun) if b"RANK=1" in _environ(pid)]
    assert len(rank1) == 1
    os.kill(rank1[0], signal.SIGKILL)
    code = proc.wait(timeout=90)  # bounded: the timeout is 30 s, a reset is at once
    err = (tmp_path / "k.err").read_text()
    assert (code == 15) if launcher == "nproc" else (code != 0), (code, err[-2000:])
    assert "error: rank 0 lost its peers" in err  # exit 15 with one line, not a traceback


def _children(pid: int) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        try:
            parent = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if d.name.isdigit() and parent == pid:
            found.append(int(d.name))
    return found


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_the_nproc_launcher_alone_stops_the_job(tmp_path, sig, code):
    """`lenet train --nproc 2` alone gets SIGTERM or SIGINT (a scheduler, `kill PID`): torchrun
    and its ranks stop, last.pt is saved once, and the command exits 143 / 130 as a plain run
    does (torchrun itself exits 1 after a signal)."""
    cmd = [sys.executable, "-m", "lenet_cli", "train", *TRAIN, "--nproc", "2", "--epochs", "20",
           "--batch-size", "8", "--name", "t"]  # fmt: skip
    proc = _start_past_epoch_1(cmd, tmp_path, "t")
    proc.send_signal(sig)  # to the launcher only, not its process group
    assert proc.wait(timeout=120) == code
    err = (tmp_path / "t.err").read_text()
    assert err.count("error: interrupted by SIG") == 1, err
    step = torch.load(tmp_path / "o" / "t" / "last.pt", weights_only=True)["step"]
    assert 128 <= step < 20 * 128


def test_a_bad_option_with_nproc_is_one_message_before_any_rank_starts(tmp_path):
    cmd = [sys.executable, "-m", "lenet_cli", "train", *TRAIN, "--nproc", "2", "--lr", "-1"]
    result = _run(cmd, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --lr must be positive, got -1.0"  # no torchrun output
    assert not (tmp_path / "o").exists()


def test_a_rank_keeps_signals_as_flags_until_it_leaves():
    """torchrun sends SIGTERM to every rank once one fails; a rank already on its way out with
    its own error must not die of it before it says why and writes its exit code (it did, under
    load: `--nproc` then had no code from any rank and exited 1 instead of 15)."""
    code = (
        "import os, signal\n"
        "from lenet_cli.interrupts import Signals\n"
        "with Signals() as s:\n"
        "    s.escalate = False  # a data-parallel rank\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "print('alive', s.received)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"alive {int(signal.SIGTERM)}"
    plain = code.replace("    s.escalate = False  # a data-parallel rank\n", "    pass\n")
    died = subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True)
    assert died.returncode == -signal.SIGTERM  # a plain run's handler is gone after training
