"""The fused CPU kernel against PyTorch's ops, alternating in one process.

    python benchmarks/fused.py [--batch-sizes 64,256,1024] [--threads 2] [--arch tutorial]
        [--rounds 5] [--images 8192] [--json]

One model, one optimizer (SGD, momentum 0.9, fused as `lenet train` builds it) and random
channels_last data; for each batch size, ``rounds`` rounds each time all three variants:
PyTorch's ops (``--no-fused``), the fused kernel (``fused.FusedNet``) under autograd and
torch.optim's step, and the one-call training step (``fused_step.FusedStep``, what `lenet
train` runs on the CPU), which share the same parameters. Each measurement is one warmed-up
pass over ``images`` images; the figure is the median over the rounds. Alternating in one
process is what makes the ratio trustworthy on a machine whose speed drifts between runs
(docs/kernels.md).
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

from lenet_cli.data import batch_rows, batches  # noqa: E402
from lenet_cli.fast import kernel, speed  # noqa: E402
from lenet_cli.fast.fused_step import FusedStep  # noqa: E402
from lenet_cli.losses import build_loss  # noqa: E402
from lenet_cli.model import build_model  # noqa: E402
from lenet_cli.optim import build_optimizer  # noqa: E402
from lenet_cli.training.step import train_step  # noqa: E402

VARIANTS = ("pytorch", "fused", "step")  # step: the one-call training step (training only)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-sizes", default="64,256,1024")
    p.add_argument("--threads", type=int, default=None, help="default: the physical cores")
    p.add_argument("--arch", default="tutorial", choices=["tutorial", "lenet5"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--images", type=int, default=8192)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if kernel.status() is not None:
        sys.exit(f"the fused kernel is not available: {kernel.status()}")
    threads = a.threads or speed.default_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    model = speed.prepare_model(build_model(a.arch), cpu, channels_last=True)
    fast = speed.prepare_model(model, cpu, channels_last=True, fused=True)  # same parameters
    models = {"pytorch": model, "fused": fast, "step": fast}
    opt = build_optimizer("sgd", model.parameters(), lr=0.01, momentum=0.9, weight_decay=0)
    loss_fn = build_loss("cross-entropy")
    one_call = FusedStep(fast, opt, "cross-entropy", 0.0)
    x = speed.prepare_inputs(torch.randn(a.images, 1, 32, 32), True)
    y = torch.randint(0, 10, (a.images,))
    order = torch.Generator().manual_seed(0)

    def train_pass(variant: str, bs: int) -> float:
        t0 = time.perf_counter()
        if variant == "step":  # as `lenet train` runs it: the batch's rows, read in place
            for index in batch_rows(a.images, bs, generator=order):
                one_call.rows(x, y, index)
        else:
            for xb, yb in batches(x, y, bs, generator=order):
                train_step(models[variant], opt, loss_fn, xb, yb)
        return a.images / (time.perf_counter() - t0)

    @torch.inference_mode()
    def infer_pass(run, bs: int) -> float:
        t0 = time.perf_counter()
        for start in range(0, a.images, bs):
            run(x[start : start + bs])
        return a.images / (time.perf_counter() - t0)

    rows = []
    for bs in (int(b) for b in a.batch_sizes.split(",")):
        got = {v: {"train": [], "infer": []} for v in VARIANTS}
        for variant in VARIANTS:  # warm-up
            train_pass(variant, bs)
            infer_pass(models[variant], bs)
        for _ in range(a.rounds):
            for variant in VARIANTS:
                got[variant]["train"].append(train_pass(variant, bs))
                if variant != "step":  # its inference is the fused model's
                    got[variant]["infer"].append(infer_pass(models[variant], bs))
        row = {"batch_size": bs, "load": [round(v, 2) for v in os.getloadavg()]}
        for variant in VARIANTS:
            row[f"{variant}_train_images_per_s"] = statistics.median(got[variant]["train"])
            if variant != "step":
                row[f"{variant}_infer_images_per_s"] = statistics.median(got[variant]["infer"])
        rows.append(row)
        if not a.json:
            base_t = row["pytorch_train_images_per_s"]
            base_i = row["pytorch_infer_images_per_s"]
            print(
                f"batch {bs:>5}: train "
                + " / ".join(f"{row[f'{v}_train_images_per_s']:,.0f}" for v in VARIANTS)
                + f" img/s ({row['fused_train_images_per_s'] / base_t:.2f}x, "
                + f"{row['step_train_images_per_s'] / base_t:.2f}x); infer "
                + " / ".join(f"{row[f'{v}_infer_images_per_s']:,.0f}" for v in VARIANTS[:2])
                + f" ({row['fused_infer_images_per_s'] / base_i:.2f}x)  load {row['load'][0]}"
            )
    if a.json:
        print(json.dumps({"arch": a.arch, "threads": threads, "variants": VARIANTS, "rows": rows}))
    else:
        print(
            f"({a.arch}, {threads} thread(s), median of {a.rounds} alternating rounds; train: "
            "PyTorch's ops / fused kernel / one-call step, infer: PyTorch's ops / fused kernel; "
            "ratios against PyTorch's ops)"
        )


if __name__ == "__main__":
    main()
