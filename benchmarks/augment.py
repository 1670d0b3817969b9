"""What --augment and --dropout cost on the CPU: training images/s, alternating in one process.

    python benchmarks/augment.py [--arch lenet5] [--batch-size 64] [--threads 1] [--rounds 7]
        [--images 2048] [--json]

The training step of each variant is built as `lenet train` builds it (``step.choose``: the
fused step, one C call, where it applies; dropout trains through PyTorch's ops, which the
fused step lacks) on the bundled sample's images (AdamW, label smoothing 0.1): plain;
``--augment`` (each batch gathered, augmented, then the fused step); ``--augment`` without the
elastic field; ``--dropout 0.2``; both; and ``--no-fused`` (PyTorch's ops, no augmentation) for
scale. Also the augmentation alone (``Augment`` on gathered batches, no step). Each measurement
is one pass over ``images`` images; the figure is the median over the rounds, the variants
taking turns within each round, so a machine whose speed drifts (other programs) moves them
alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lenet_cli.data import batch_rows, load_dataset  # noqa: E402
from lenet_cli.fast import speed  # noqa: E402
from lenet_cli.model import build_model  # noqa: E402
from lenet_cli.optim import build_optimizer  # noqa: E402
from lenet_cli.training import augment, step  # noqa: E402
from lenet_cli.training.dropout import DropoutNet  # noqa: E402

# name: (fused kernels, augment strengths or None, dropout)
VARIANTS = {
    "plain": (True, None, 0.0),
    "augment": (True, augment.Strengths(), 0.0),
    "augment, no elastic": (True, augment.Strengths(elastic=0.0), 0.0),
    "dropout 0.2": (True, None, 0.2),
    "augment + dropout 0.2": (True, augment.Strengths(), 0.2),
    "no-fused": (False, None, 0.0),
}


def build(name: str, arch: str, images, labels, batch: int, background: float):
    """The variant's training step, as `lenet train` chooses it."""
    fused, strengths, dropout = VARIANTS[name]
    torch.manual_seed(0)
    model = build_model(arch)
    net = speed.prepare_model(model, torch.device("cpu"), channels_last=True, fused=fused)
    optimizer = build_optimizer("adamw", model.parameters(), lr=1e-3, momentum=0.9,
                                weight_decay=0.05)  # fmt: skip
    aug = None
    if strengths is not None:
        aug = augment.Augment(strengths, background, augment.generator_for(0))
    trainer = DropoutNet(model, dropout) if dropout else None
    return step.choose(net, optimizer, "cross-entropy", 0.1, images, labels, batch,
                       train_net=trainer, augment=aug, dropout=bool(dropout))  # fmt: skip


def timed_pass(steps, images: int, generator: torch.Generator) -> float:
    """Seconds for ``images`` training images (whole passes over the batches drawn)."""
    done, started = 0, time.perf_counter()
    while done < images:
        for batch in steps.batches(generator):
            done += steps.step(batch)[2]
            if done >= images:
                break
    return time.perf_counter() - started


def augment_only(aug, images: torch.Tensor, n: int, batch: int, gen: torch.Generator) -> float:
    done, started = 0, time.perf_counter()
    while done < n:
        for rows in batch_rows(len(images), batch, generator=gen):
            aug(images.index_select(0, rows))
            done += len(rows)
            if done >= n:
                break
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="lenet5", choices=["tutorial", "lenet5"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    train = load_dataset("mnist-sample", "train")
    images = speed.prepare_inputs(train.images, True)
    background = -train.mean / train.std
    steps = {n: build(n, a.arch, images, train.labels, a.batch_size, background) for n in VARIANTS}
    aug = augment.Augment(augment.Strengths(), background, augment.generator_for(0))
    gen = torch.Generator().manual_seed(0)
    for s in steps.values():  # warm-up: the kernels' first calls, buffers
        timed_pass(s, a.batch_size * 4, gen)
    seconds: dict[str, list[float]] = {n: [] for n in [*VARIANTS, "augmentation alone"]}
    loads = []
    for _ in range(a.rounds):
        loads.append(os.getloadavg()[0])
        for n, s in steps.items():
            seconds[n].append(timed_pass(s, a.images, gen))
        seconds["augmentation alone"].append(augment_only(aug, images, a.images, a.batch_size, gen))
    rate = {n: a.images / statistics.median(v) for n, v in seconds.items()}
    modes = {n: s.mode or f"PyTorch's step ({s.why_not_fused or 'no fused kernels'})"
             for n, s in steps.items()}  # fmt: skip
    result = {
        "arch": a.arch,
        "batch_size": a.batch_size,
        "threads": a.threads,
        "rounds": a.rounds,
        "images_per_measurement": a.images,
        "load_average": [round(x, 2) for x in loads],
        "images_per_s": {n: round(r) for n, r in rate.items()},
        "relative_to_plain": {n: round(r / rate["plain"], 3) for n, r in rate.items()},
        "step": modes,
    }
    if a.json:
        print(json.dumps(result, indent=2))
        return
    print(f"training images/s, {a.arch}, batch {a.batch_size}, {a.threads} thread(s), median of "
          f"{a.rounds} rounds of {a.images} images (load average {min(loads):.1f}-"
          f"{max(loads):.1f})")  # fmt: skip
    for n, r in rate.items():
        how = modes.get(n, "Augment on gathered batches, no training step")
        print(f"  {n:<24} {r:>9,.0f}  x{r / rate['plain']:.2f}  {how}")


if __name__ == "__main__":
    main()
