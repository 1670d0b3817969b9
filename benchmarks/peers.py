"""lenet beside other ways to train the same network: one recipe, each in a fresh process.

    python benchmarks/peers.py [--epochs 20] [--threads 2] [--data-dir DIR] [--only NAME,...]
        [--busy N] [--json]

The recipe: the tutorial's LeNet (3x3 kernels, 81,194 parameters), Adam at 1e-3, batch 64,
cross-entropy, ``--epochs`` epochs of the training set with the whole test set evaluated after
each, ``--threads`` CPU threads. Data: the IDX files in ``--data-dir`` (default: the bundled
sample, 5,000 training and 10,000 test digits), padded to 32x32 and normalised once, in memory.

Peers (each written here to the same network, checked by its parameter count; a peer whose
packages are not installed is skipped and says so):
- ``lenet``: ``lenet train`` as a user runs it (``--threads auto``, its default, which picks
  between 1 thread and the physical cores as it goes; ``--lenet-threads N`` fixes it);
- ``torch``: plain PyTorch done well: one in-memory tensor, channels_last, randperm batches,
  ``Adam(fused=True)``, no DataLoader;
- ``torch-compile``: the same with ``torch.compile(model)``;
- ``keras-jax``: Keras 3 on JAX, ``model.fit`` with validation data;
- ``jax``: JAX + Flax (linen) + optax, a jitted training step.

Reported per peer: training images/s (training time only, evaluation excluded), wall seconds of
the whole process (start-up, data, training, evaluation, exit) and the final test accuracy.
Peers run one after another (``--repeats`` rounds, interleaved), so that a change in load hits
all of them alike. ``--busy N`` starts N busy-looping processes for the whole measurement (the
"beside other programs" case).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "lenet_cli" / "data" / "mnist_sample"
PEERS = ("lenet", "torch", "torch-compile", "keras-jax", "jax")
PARAMS = 81_194
MEAN, STD = 0.1307, 0.3081  # MNIST's, as lenet uses


def load(data_dir: Path):
    """(train_x, train_y, test_x, test_y) as float32 [N,32,32] normalised and int64 labels."""
    import numpy as np

    def idx(name: str):
        path = next(p for p in (data_dir / name, data_dir / (name + ".gz")) if p.exists())
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        ndim = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)

    def images(name: str):
        x = np.pad(idx(name), ((0, 0), (2, 2), (2, 2))).astype(np.float32) / 255.0
        return (x - MEAN) / STD

    return (
        images("train-images-idx3-ubyte"),
        idx("train-labels-idx1-ubyte").astype(np.int64),
        images("t10k-images-idx3-ubyte"),
        idx("t10k-labels-idx1-ubyte").astype(np.int64),
    )


# ---- the peers, each run as `python peers.py --peer NAME` in its own process ----------------


def _result(params: int, train_images: int, train_s: float, accuracy: float) -> dict:
    """What every peer reports (its parameter count is checked against PARAMS)."""
    return {"params": params, "train_images": train_images, "train_s": train_s,
            "accuracy": accuracy}  # fmt: skip


def run_torch(args, compiled: bool) -> dict:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 6, 3), nn.Conv2d(6, 16, 3)
            self.fc1, self.fc2, self.fc3 = (
                nn.Linear(576, 120),
                nn.Linear(120, 84),
                nn.Linear(84, 10),
            )

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = torch.flatten(x, 1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    xtr, ytr, xte, yte = (torch.from_numpy(a) for a in load(args.data_dir))
    xtr = xtr[:, None].contiguous(memory_format=torch.channels_last)
    xte = xte[:, None].contiguous(memory_format=torch.channels_last)
    net = Net().to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    model = torch.compile(net) if compiled else net
    train_s, acc = 0.0, 0.0
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        for idx in torch.randperm(len(ytr)).split(64):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
        train_s += time.perf_counter() - t0
        model.eval()
        with torch.inference_mode():
            correct = sum(
                int((model(x).argmax(1) == y).sum())
                for x, y in zip(xte.split(1000), yte.split(1000), strict=True)
            )
        acc = correct / len(yte)
    return _result(params, args.epochs * len(ytr), train_s, acc)


def run_keras(args) -> dict:
    os.environ["KERAS_BACKEND"] = "jax"
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    xtr, ytr, xte, yte = load(args.data_dir)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            layers.Conv2D(6, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(120, activation="relu"),
            layers.Dense(84, activation="relu"),
            layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    class Clock(keras.callbacks.Callback):  # training time only: from epoch start to validation
        train_s = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_test_begin(self, logs=None):
            Clock.train_s += time.perf_counter() - self.t0

    history = model.fit(
        xtr[..., None], ytr, batch_size=64, epochs=args.epochs, shuffle=True, verbose=0,
        validation_data=(xte[..., None], yte), validation_batch_size=1000, callbacks=[Clock()],
    )  # fmt: skip
    accuracy = float(history.history["val_accuracy"][-1])
    return _result(model.count_params(), args.epochs * len(ytr), Clock.train_s, accuracy)


def run_jax(args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.max_pool(nn.relu(nn.Conv(6, (3, 3), padding="VALID")(x)), (2, 2), (2, 2))
            x = nn.max_pool(nn.relu(nn.Conv(16, (3, 3), padding="VALID")(x)), (2, 2), (2, 2))
            x = x.reshape(x.shape[0], -1)
            x = nn.relu(nn.Dense(84)(nn.relu(nn.Dense(120)(x))))
            return nn.Dense(10)(x)

    xtr, ytr, xte, yte = load(args.data_dir)
    xtr, xte = xtr[..., None], xte[..., None]
    net = Net()
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)))
    tx = optax.adam(1e-3)
    state = tx.init(params)

    @jax.jit
    def step(params, state, x, y):
        def loss_fn(p):
            return optax.softmax_cross_entropy_with_integer_labels(net.apply(p, x), y).mean()

        grads = jax.grad(loss_fn)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    @jax.jit
    def correct(params, x, y):
        return (net.apply(params, x).argmax(-1) == y).sum()

    rng = np.random.default_rng(0)
    train_s, acc = 0.0, 0.0
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        order = rng.permutation(len(ytr))
        for i in range(0, len(order), 64):
            idx = order[i : i + 64]
            params, state = step(params, state, xtr[idx], ytr[idx])
        jax.block_until_ready(params)
        train_s += time.perf_counter() - t0
        acc = sum(
            int(correct(params, xte[i : i + 1000], yte[i : i + 1000]))
            for i in range(0, len(yte), 1000)
        ) / len(yte)
    count = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
    return _result(count, args.epochs * len(ytr), train_s, acc)


def run_peer(args) -> dict:
    if args.peer in ("torch", "torch-compile"):
        return run_torch(args, compiled=args.peer == "torch-compile")
    return {"keras-jax": run_keras, "jax": run_jax}[args.peer](args)


# ---- the parent: one fresh process per peer and round ----------------------------------------

NEEDS = {"torch-compile": ["torch"], "keras-jax": ["keras", "jax"], "jax": ["jax", "flax", "optax"]}


def missing(peer: str) -> list[str]:
    import importlib.util

    need = [m for m in NEEDS.get(peer, []) if importlib.util.find_spec(m) is None]
    return need


def measure(peer: str, args) -> dict:
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(args.threads),
        XLA_FLAGS=f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={args.threads}",
    )
    if peer == "lenet":
        data = (
            ["--data", "mnist-sample"]
            if args.data_dir == SAMPLE
            else ["--data", "mnist", "--data-dir", str(args.data_dir)]
        )
        cmd = [sys.executable, "-m", "lenet_cli", "train", *data, "--optimizer", "adam",
               "--lr", "1e-3", "--batch-size", "64", "--epochs", str(args.epochs),
               "--threads", args.lenet_threads, "--scheduler", "none", "--progress", "none",
               "--json", "--out", str(args.runs), "--name", f"peers-{time.time_ns()}"]  # fmt: skip
    else:
        cmd = [sys.executable, __file__, "--peer", peer, "--epochs", str(args.epochs),
               "--threads", str(args.threads), "--data-dir", str(args.data_dir)]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        return {
            "peer": peer,
            "error": done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"],
        }
    out = (
        json.loads(done.stdout.strip().splitlines()[-1])
        if peer != "lenet"
        else json.loads(done.stdout)
    )
    if peer == "lenet":  # lenet checks its own network (tests/test_model.py)
        out = {"params": PARAMS, **out}
        img_s, acc = out["images_per_s"], out["final"]["test_acc"]
    else:
        img_s, acc = out["train_images"] / out["train_s"], out["accuracy"]
    if out["params"] != PARAMS:
        return {
            "peer": peer,
            "error": [f"{out['params']:,} parameters, not {PARAMS:,}: not the same network"],
        }
    return {"peer": peer, "images_per_s": img_s, "wall_s": wall, "accuracy": acc}


def busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2, help="threads of every peer but lenet")
    ap.add_argument("--lenet-threads", default="auto", help="lenet's --threads (default: auto)")
    ap.add_argument("--data-dir", type=Path, default=SAMPLE)
    ap.add_argument("--only", default=",".join(PEERS), help="comma-separated peers to run")
    ap.add_argument("--repeats", type=int, default=1, help="rounds over all peers (median shown)")
    ap.add_argument("--busy", type=int, default=0, help="busy-looping processes beside the runs")
    ap.add_argument("--runs", type=Path, default=Path("/tmp/lenet-peers-runs"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--peer", help=argparse.SUPPRESS)  # internal: run one peer in this process
    args = ap.parse_args()
    args.data_dir = args.data_dir.resolve()
    if args.peer:
        print(json.dumps(run_peer(args)))
        return
    peers = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        ap.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    for peer in [p for p in peers if missing(p)]:
        print(f"skipping {peer}: {', '.join(missing(peer))} not installed", file=sys.stderr)
    peers = [p for p in peers if not missing(p)]
    busy = busy_loops(args.busy)
    results: dict[str, list[dict]] = {p: [] for p in peers}
    try:
        for r in range(args.repeats):
            for peer in peers:
                res = measure(peer, args)
                print(f"round {r + 1} {peer}: {res}", file=sys.stderr)
                results[peer].append(res)
    finally:
        for proc in busy:
            proc.kill()
    rows = [summarise(peer, runs) for peer, runs in results.items()]
    base = next(
        (r["images_per_s"] for r in rows if r["peer"] == "torch" and "images_per_s" in r), None
    )
    for row in rows:
        if base and "images_per_s" in row:
            row["vs_torch"] = row["images_per_s"] / base
    meta = {"epochs": args.epochs, "threads": args.threads, "busy": args.busy,
            "repeats": args.repeats, "data": args.data_dir.name}  # fmt: skip
    if args.json:
        print(json.dumps({**meta, "peers": rows}, indent=2))
        return
    print(f"{args.epochs} epochs, Adam 1e-3, batch 64, {args.threads} threads, {args.busy} busy")
    print(f"{'system':<15}{'train img/s':>12}{'x torch':>9}{'wall s':>8}{'test acc':>10}")
    for row in rows:
        if "error" in row:
            print(f"{row['peer']:<15}  failed: {row['error']}")
            continue
        ratio = f"{row['vs_torch']:.2f}" if "vs_torch" in row else ""
        print(
            f"{row['peer']:<15}{row['images_per_s']:>12,.0f}{ratio:>9}{row['wall_s']:>8.1f}{row['accuracy']:>10.2%}"
        )


def summarise(peer: str, runs: list[dict]) -> dict:
    import statistics

    good = [r for r in runs if "error" not in r]
    if not good:
        return {"peer": peer, "error": runs[-1]["error"]}
    return {
        "peer": peer,
        "images_per_s": statistics.median(r["images_per_s"] for r in good),
        "wall_s": statistics.median(r["wall_s"] for r in good),
        "accuracy": good[-1]["accuracy"],
        "runs": len(good),
    }


if __name__ == "__main__":
    main()
