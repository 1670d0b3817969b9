"""What `lenet train` costs beyond `import torch`: start-up, measured as a user feels it.

    python benchmarks/startup.py [--rounds 5] [--threads 1]

Each round runs, in fresh processes and alternating:
- ``python -c "import torch"``: the floor every PyTorch program pays;
- ``lenet train --max-steps 1``: a one-step training run on the bundled sample (data loading,
  the model and the C kernels, the optimizer, one step, the end-of-epoch evaluation of the
  10,000 test digits, the checkpoint), as ``python -m lenet_cli``;
  its ``--json`` summary says when its first training step started (``first_step_after_s``,
  seconds since the process started, read from /proc), so the cost up to the first step is
  shown too.
The medians are shown, and the difference to ``import torch``. Run it on a quiet machine, or
read the differences only (the rounds alternate, so load hits each alike).
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

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    """(wall seconds, stdout) of a command that must succeed."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return wall, done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", default="1", help="--threads of the training run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    env = dict(os.environ, LENET_OFFLINE="1")
    walls: dict[str, list[float]] = {"import torch": [], "lenet train, 1 step": []}
    first: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        for r in range(args.rounds):
            walls["import torch"].append(timed([sys.executable, "-c", "import torch"], env)[0])
            cmd = [sys.executable, "-m", "lenet_cli", "train", "--data", "mnist-sample",
                   "--max-steps", "1", "--epochs", "1", "--threads", args.threads,
                   "--progress", "none", "--json", "--out", out, "--name", f"r{r}"]  # fmt: skip
            wall, stdout = timed(cmd, env)
            walls["lenet train, 1 step"].append(wall)
            at = json.loads(stdout).get("first_step_after_s")
            if at is not None:
                first.append(at)
    med = {k: statistics.median(v) for k, v in walls.items()}
    result = {
        "rounds": args.rounds,
        "median_wall_s": med,
        "train_minus_import_s": med["lenet train, 1 step"] - med["import torch"],
        "first_step_s": statistics.median(first) if first else None,
        "load_1m": os.getloadavg()[0],
    }
    if first:
        result["first_step_minus_import_s"] = result["first_step_s"] - med["import torch"]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for k, v in med.items():
        print(f"{k:<22} {v:6.2f} s (median of {args.rounds})")
    print(f"{'difference':<22} {result['train_minus_import_s']:6.2f} s")
    if first:
        print(f"{'first step starts at':<22} {result['first_step_s']:6.2f} s "
              f"({result['first_step_minus_import_s']:+.2f} s beside import torch)")  # fmt: skip
    print(f"load average (1 min) at the end: {result['load_1m']:.2f}")


if __name__ == "__main__":
    main()
