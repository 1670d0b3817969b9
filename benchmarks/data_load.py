"""Data-layer speed: cold .gz load, decoded-cache load, and batching overhead vs a training epoch.

    python benchmarks/data_load.py [--dir /usr/share/datasets/fashion-mnist] [--repeat 5] [--json]

Targets (issue 3): 60,000 Fashion-MNIST images from .gz in <= 1.5 s cold and <= 0.3 s from the
decoded cache; randperm + slicing for one 60k epoch at batch 64 under 5% of a training epoch.
"Cold" means no decoded cache (a fresh cache directory each time); the OS page cache holds the
.gz files. Every figure is the median of --repeat runs, timed with time.perf_counter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lenet_cli.data import batches, load_dataset  # noqa: E402


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


_FRESH = """
import os, sys, time, torch
sys.path.insert(0, {root!r})
from lenet_cli.data import load_dataset
torch.set_num_threads({threads})
t0 = time.perf_counter()
load_dataset("fashion-mnist", "train", data_dir={dir!r}, download=False)
print(time.perf_counter() - t0)
"""


def _fresh_process(args, cache: str) -> float:
    """One load in a new Python process (imports excluded): what a user's second run sees."""
    code = _FRESH.format(
        root=str(Path(__file__).resolve().parents[1]), dir=args.dir, threads=args.threads
    )
    env = {**os.environ, "XDG_CACHE_HOME": cache}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def _model():
    try:
        from lenet_cli.model import build_model

        return build_model("tutorial")
    except ImportError:  # a local copy of the tutorial net

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1, self.conv2 = torch.nn.Conv2d(1, 6, 3), torch.nn.Conv2d(6, 16, 3)
                self.fc1 = torch.nn.Linear(576, 120)
                self.fc2, self.fc3 = torch.nn.Linear(120, 84), torch.nn.Linear(84, 10)

            def forward(self, x):
                x = F.max_pool2d(F.relu(self.conv1(x)), 2)
                x = F.max_pool2d(F.relu(self.conv2(x)), 2)
                x = F.relu(self.fc1(torch.flatten(x, 1)))
                return self.fc3(F.relu(self.fc2(x)))

        return Net()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir",
        default="/usr/share/datasets/fashion-mnist",
        help="Directory with Fashion-MNIST IDX .gz files.",
    )
    parser.add_argument("--repeat", type=int, default=5, help="Runs per figure (median).")
    parser.add_argument("--batch-size", type=int, default=64, help="Batch size.")
    parser.add_argument("--threads", type=int, default=2, help="torch threads.")
    parser.add_argument("--json", action="store_true", help="Print one JSON document.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:

        def cold() -> None:
            os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(dir=tmp)  # no decoded cache
            load_dataset("fashion-mnist", "train", data_dir=args.dir, download=False)

        def cached() -> None:
            load_dataset("fashion-mnist", "train", data_dir=args.dir, download=False)

        load_dataset("random", "train", random_size=8)  # warm up torch itself
        cold_s = _median_time(cold, args.repeat)
        cached()  # make sure the last cold run's cache is in place
        cached_s = _median_time(cached, args.repeat)
        ds = load_dataset("fashion-mnist", "train", data_dir=args.dir, download=False)
        fresh_cold, fresh_cached = [], []
        for _ in range(3):
            cache = tempfile.mkdtemp(dir=tmp)
            fresh_cold.append(_fresh_process(args, cache))
            fresh_cached.append(_fresh_process(args, cache))
        fresh_cold_s = statistics.median(fresh_cold)
        fresh_cached_s = statistics.median(fresh_cached)

    gen = torch.Generator().manual_seed(0)

    def epoch_batches() -> None:
        for _batch in batches(ds.images, ds.labels, args.batch_size, generator=gen):
            pass

    batch_s = _median_time(epoch_batches, args.repeat)

    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    steps = 60
    it = batches(ds.images, ds.labels, args.batch_size, generator=gen)
    data = [next(it) for _ in range(steps)]

    def train_steps() -> None:
        for x, y in data:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

    train_steps()  # warm-up
    per_step = _median_time(train_steps, max(3, args.repeat // 2)) / steps
    n_batches = -(-len(ds) // args.batch_size)
    epoch_s = per_step * n_batches
    result = {
        "images": len(ds),
        "cold_gz_load_s": round(cold_s, 3),
        "decoded_cache_load_s": round(cached_s, 3),
        "fresh_process_cold_gz_load_s": round(fresh_cold_s, 3),
        "fresh_process_decoded_cache_load_s": round(fresh_cached_s, 3),
        "batching_epoch_s": round(batch_s, 4),
        "training_epoch_estimate_s": round(epoch_s, 2),
        "batching_share_of_epoch_pct": round(100 * batch_s / epoch_s, 2),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "repeat": args.repeat,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{len(ds):,} Fashion-MNIST training images, median of {args.repeat}:")
    print(f"  cold load from .gz (decode, pad, normalise, write cache): {cold_s:.3f} s  (<= 1.5)")
    print(f"  load from the decoded cache:                             {cached_s:.3f} s  (<= 0.3)")
    print(
        f"  the same in a fresh process (imports not counted, median of 3): "
        f"cold {fresh_cold_s:.3f} s, cached {fresh_cached_s:.3f} s"
    )
    print(
        f"  batching, one epoch at batch {args.batch_size} (randperm + index_select): "
        f"{batch_s * 1000:.1f} ms"
    )
    print(
        f"  training epoch estimate (tutorial LeNet, SGD, {args.threads} threads): "
        f"{epoch_s:.2f} s ({per_step * 1000:.2f} ms/step x {n_batches})"
    )
    print(f"  batching overhead: {100 * batch_s / epoch_s:.2f}% of an epoch  (< 5%)")


if __name__ == "__main__":
    main()
