"""`lenet bench` and the bench engine: JSON shape, exit codes, figures that make sense."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.errors import UsageError
from lenet_cli.training.bench import run_bench

runner = CliRunner()
TINY = ["--images", "32", "--batch-sizes", "8,16", "--threads", "1", "--repeats", "1"]


def run(*args):
    return runner.invoke(app, list(args))


def test_run_bench_returns_a_row_per_cell():
    events = []
    r = run_bench(
        device=torch.device("cpu"),
        batch_sizes=[1, 16],
        threads=[1],
        repeats=2,
        images=32,
        on_event=events.append,
    )
    assert [(row["threads"], row["batch_size"]) for row in r["results"]] == [(1, 1), (1, 16)]
    # auto layout: NCHW for a single image, channels_last for batches (measured faster each)
    assert [row["channels_last"] for row in r["results"]] == [False, True]
    for row in r["results"]:
        assert row["train_images_per_s"] > 0 and row["infer_images_per_s"] > 0
        assert len(row["train_pass_s"]) == 2 and row["train_epoch_s"] > 0
    assert r["channels_last"] == "auto" and r["precision"] == "fp32"
    assert [e["event"] for e in events] == ["cell", "cell_done", "cell", "cell_done"]
    assert torch.get_num_threads() >= 1


def test_run_bench_restores_threads():
    before = torch.get_num_threads()
    run_bench(
        device=torch.device("cpu"), batch_sizes=[8], threads=[1], repeats=1, images=8, infer=False
    )
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    "kwargs", [{"batch_sizes": [0]}, {"images": 4}, {"repeats": 0}, {"precision": "fp16-mixed"}]
)
def test_run_bench_rejects_bad_settings(kwargs):
    args = {
        "device": torch.device("cpu"),
        "batch_sizes": [8],
        "threads": [1],
        "images": 8,
        **kwargs,
    }
    with pytest.raises(UsageError):
        run_bench(**args)


def test_bench_json():
    r = run("bench", "--device", "cpu", *TINY, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["device"] == "cpu" and doc["arch"] == "tutorial"
    assert {row["batch_size"] for row in doc["results"]} == {8, 16}
    assert "measuring" in r.stderr  # progress goes to stderr, stdout stays one JSON document
    from lenet_cli.fast import fused

    assert doc["fused"] is (fused.status() is None)  # the C kernels, when they build
    classic = json.loads(
        run("bench", "--device", "cpu", *TINY, "--arch", "classic", "--json").stdout
    )
    assert classic["fused"] is False  # a network they do not compute: PyTorch's ops


def test_bench_table_and_options():
    r = run(
        "bench",
        "--device",
        "cpu",
        *TINY,
        "--no-channels-last",
        "--arch",
        "lenet5",
        "--no-infer",
        "--precision",
        "bf16-mixed",
    )
    assert r.exit_code == 0, r.stderr
    assert "train" in r.stdout and "NCHW" in r.stdout and "bf16-mixed" in r.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--batch-sizes", "64,x"],
        ["--batch-sizes", "0"],
        ["--threads", "-1"],
        ["--precision", "fp16-mixed"],
        ["--no-train", "--no-infer"],
        ["--device", "gpu"],
    ],
)
def test_bench_usage_errors_exit_2(args):
    r = run("bench", "--device", "cpu", *TINY, *args)
    assert r.exit_code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_bench_missing_cuda_exits_3():
    r = run("bench", "--device", "cuda", *TINY)
    assert r.exit_code == 3


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16-mixed", "fp16-mixed"])
def test_bench_on_cuda(precision):
    r = run_bench(
        device=torch.device("cuda"),
        batch_sizes=[256],
        threads=[None],
        repeats=2,
        images=1024,
        precision=precision,
    )
    row = r["results"][0]
    assert r["backends"]["cudnn_benchmark"] is True
    assert row["train_images_per_s"] > 0 and row["infer_images_per_s"] > 0


def _busy_children() -> list[int]:
    """Our child processes that run the busy loop (from /proc)."""
    import os
    from pathlib import Path

    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and b"while True: pass" in cmd and stat[0] != "Z":
            pids.append(int(proc.name))
    return pids


def test_threads_auto_beside_a_busy_process(monkeypatch):
    from lenet_cli.fast import speed

    monkeypatch.setattr(speed, "default_threads", lambda: 2)
    seen = []
    r = run_bench(
        device=torch.device("cpu"),
        batch_sizes=[16],
        threads=["auto"],
        repeats=1,
        images=512,
        infer=False,
        busy=1,
        on_event=lambda e: seen.append(_busy_children()) if e["event"] == "cell" else None,
    )
    (row,) = r["results"]
    assert row["threads"] == "auto" and row["threads_chosen"] and r["busy"] == 1
    assert all(n in (1, 2) for n in row["threads_chosen"])
    assert len(seen[0]) == 1  # the busy process ran during the measurement...
    assert _busy_children() == []  # ...and is gone after it
