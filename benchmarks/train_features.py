"""What the training options of issue 23 cost per step: none, --clip-grad-norm, --clip-grad-value,
--ema, each the training loop's own step (the fused step where it runs, then the average).

    python benchmarks/train_features.py [--variants none,clip-norm,clip-value,ema]
        [--code DIR ...] [--rounds 5] [--steps 300] [--batch-size 64] [--threads 1] [--json]

Each (code, variant) runs in a fresh process that builds the run as `lenet train` does (data,
model, optimizer, the step chosen once: ``Run``) and times ``--steps`` steps after a warm-up, as
``run_epoch`` takes them (``steps.step(batch)``, then ``ema.update()`` with --ema). With one
thread the clock is the process's CPU time, which other programs on the machine do not stretch
as they do the wall clock; with more, the wall clock. The pairs
run one after another, ``--rounds`` times interleaved, so that a change in load hits all of
them alike; reported per pair: the least and the median over rounds of microseconds per step
(on a loaded machine the least is the step's own cost; the median shows the load), images/s at
the least, and each variant's least as a ratio to ``none``'s of the same code.

``--code DIR`` (repeatable) times another checkout of lenet-cli (its package directory's parent,
e.g. ``git archive COMMIT | tar -x -C DIR``) beside this one: the "none" variant is how to see
that a change left the plain step's speed alone. A variant the code does not know is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "none": {},
    "clip-norm": {"clip_grad_norm": 1.0},
    "clip-value": {"clip_grad_value": 0.01},
    "ema": {"ema": 0.999},
}


def one(variant: str, steps: int, batch_size: int, threads: int) -> dict:
    """Time ``steps`` training steps of ``variant`` in this process (the code on sys.path)."""
    import dataclasses

    import torch

    from lenet_cli.config import TrainConfig
    from lenet_cli.fast import speed
    from lenet_cli.training.run import Run
    from lenet_cli.training.splits import load_splits

    torch.set_num_threads(threads)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    options = VARIANTS[variant]
    if not set(options) <= fields:
        return {"skipped": f"this code has no {', '.join(sorted(set(options) - fields))}"}
    cfg = TrainConfig(data="random", device="cpu", threads=threads, batch_size=batch_size,
                      optimizer="adam", scheduler="none", **options)  # fmt: skip
    device = torch.device("cpu")
    fused, _ = speed.fused_choice(device, None)
    run = Run(cfg, device, load_splits(cfg, device, True, lambda **e: None), fused)
    ema = getattr(run, "ema", None)

    def batches():
        while True:
            yield from run.steps.batches(run.generator)

    feed = batches()
    for _ in range(30):  # warm-up: the first steps of a stateful optimizer are torch's own
        run.steps.step(next(feed))
        if ema is not None:
            ema.update()
    clock = time.process_time if threads == 1 else time.perf_counter
    started = clock()
    for _ in range(steps):
        run.steps.step(next(feed))
        if ema is not None:
            ema.update()
    seconds = clock() - started
    return {"us_per_step": 1e6 * seconds / steps, "images_per_s": steps * batch_size / seconds,
            "fused_step": run.steps.mode}  # fmt: skip


def _spawn(code: Path, variant: str, args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, __file__, "--one", variant, "--steps", str(args.steps),
           "--batch-size", str(args.batch_size), "--threads", str(args.threads)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=code)
    if done.returncode != 0:
        return {"skipped": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--code", type=Path, action="append", default=[])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.steps, args.batch_size, args.threads)))
        return
    codes = [ROOT, *[c.resolve() for c in args.code]]
    pairs = [(c, v) for c in codes for v in args.variants.split(",")]
    times: dict = {p: [] for p in pairs}
    notes: dict = {}
    for _ in range(args.rounds):
        for pair in pairs:
            r = _spawn(*pair, args)
            if "skipped" in r:
                notes[pair] = r["skipped"]
            else:
                times[pair].append(r)
    rows = []
    for code, variant in pairs:
        got = times[(code, variant)]
        if not got:
            rows.append({"code": str(code), "variant": variant, "skipped": notes[(code, variant)]})
            continue
        us = min(r["us_per_step"] for r in got)
        median = statistics.median(r["us_per_step"] for r in got)
        rows.append({"code": str(code), "variant": variant, "us_per_step": us,
                     "median_us_per_step": median, "images_per_s": args.batch_size * 1e6 / us,
                     "fused_step": got[0]["fused_step"], "rounds": len(got)})  # fmt: skip
    base = {
        r["code"]: r["us_per_step"] for r in rows if r["variant"] == "none" and "us_per_step" in r
    }
    for r in rows:
        if "us_per_step" in r and r["code"] in base:
            r["vs_none"] = r["us_per_step"] / base[r["code"]]
    result = {"batch_size": args.batch_size, "threads": args.threads, "steps": args.steps,
              "rounds": args.rounds, "load_average": os.getloadavg(), "rows": rows}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"batch {args.batch_size}, {args.threads} thread(s), {args.steps} steps x "
          f"{args.rounds} rounds; load average {os.getloadavg()[0]:.1f} at the end")  # fmt: skip
    for r in rows:
        if "skipped" in r:
            print(f"{r['code']:<40} {r['variant']:<11} skipped: {r['skipped']}")
        else:
            print(f"{r['code']:<28} {r['variant']:<11} {r['us_per_step']:7.1f} us/step "
                  f"(median {r['median_us_per_step']:7.1f})  {r['images_per_s']:8,.0f} img/s  "
                  f"x{r.get('vs_none', 1):.3f} of none  fused step: {r['fused_step']}")  # fmt: skip


if __name__ == "__main__":
    main()
