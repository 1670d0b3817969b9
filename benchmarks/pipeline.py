"""The usual DataLoader pipeline against lenet's path: same model, optimizer, batch, threads, data.

    python benchmarks/pipeline.py [--data fashion-mnist | --data mnist --data-dir DIR]
        [--usual torchvision|tensor] [--epochs 3] [--batch-size 64] [--threads N] [--lr 0.01]
        [--json]

"usual": a torch.utils.data.Dataset whose __getitem__ prepares one uint8 28x28 image, fed by a
shuffling DataLoader (num_workers=0 by default: on 2 cores a worker competes with the training
threads), the tutorial's NCHW model, and ``loss.item()`` each step as the tutorials do. Two
Datasets (``--usual``):
- ``torchvision`` (default): what ``torchvision.datasets.MNIST`` with
  ``transforms.Compose([Pad(2), ToTensor(), Normalize(mean, std)])`` does per sample, written
  out here (torchvision does not import beside this torch): a PIL image of the sample, padded
  with black, copied into a tensor, scaled to [0, 1], normalised;
- ``tensor``: the same result from tensor operations only (no PIL), a leaner usual Dataset.
"lenet": the data normalised once into one in-memory tensor (channels_last), batches that are
slices of one seeded randperm (``lenet_cli.data.batches``),
``lenet_cli.training.step.train_step``, and
the fused CPU kernels where they build, as ``lenet train`` runs (``--no-fused``: without it).
Both start from the same initial weights and use SGD (momentum 0.9) at the same lr: torch.optim's
defaults for the usual path, as `lenet train` builds it (fused) for lenet's.
Epochs are interleaved (usual 1, lenet 1, usual 2, ...) so that load from other processes hits
both alike; images/s is the training images over the training seconds (evaluation excluded).
Test accuracy after the last epoch is computed by the same evaluator for both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lenet_cli.data import batches, load_dataset, read_idx_pair, resolve_source  # noqa: E402
from lenet_cli.fast import speed  # noqa: E402
from lenet_cli.losses import build_loss  # noqa: E402
from lenet_cli.model import build_model, tutorial_forward  # noqa: E402
from lenet_cli.optim import build_optimizer  # noqa: E402
from lenet_cli.training.step import train_step  # noqa: E402
from lenet_cli.use.evaluate import evaluate_tensors  # noqa: E402


class _PerSample(torch.utils.data.Dataset):
    """Images and labels prepared one sample at a time in ``__getitem__``."""

    def __init__(self, images, labels, mean: float, std: float) -> None:
        self.images, self.labels = images, labels  # [N,28,28] uint8 and [N], as subclasses keep
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.labels)


class TorchvisionStyleDataset(_PerSample):
    """Per sample, what torchvision's MNIST dataset and Pad(2) + ToTensor() + Normalize() do
    (it keeps tensors and converts each sample, as datasets.MNIST does)."""

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i].numpy(), mode="L")  # as datasets.MNIST does
        img = ImageOps.expand(img, border=2, fill=0)  # transforms.Pad(2): 28 -> 32, black
        x = torch.from_numpy(np.array(img, np.uint8, copy=True))  # transforms.ToTensor() ...
        x = x.view(32, 32, 1).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
        x = x.clone().sub_(self.mean).div_(self.std)  # transforms.Normalize((mean,), (std,))
        return x, int(self.labels[i])


class TensorDataset(_PerSample):
    """Per sample, the same preparation with tensor operations only (no PIL), from numpy."""

    def __init__(self, images, labels, mean: float, std: float) -> None:
        super().__init__(images.numpy(), labels.numpy(), mean, std)

    def __getitem__(self, i: int):
        x = torch.from_numpy(self.images[i]).to(torch.float32).div_(255.0)
        x = F.pad(x, (2, 2, 2, 2))  # black border, 28 -> 32
        x = (x - self.mean) / self.std
        return x.unsqueeze(0), int(self.labels[i])


DATASETS = {"torchvision": TorchvisionStyleDataset, "tensor": TensorDataset}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="fashion-mnist", help="fashion-mnist (default) or mnist")
    p.add_argument("--data-dir", default=None, help="directory holding the IDX files")
    p.add_argument(
        "--usual",
        choices=["torchvision", "tensor"],
        default="torchvision",
        help="the usual path's per-sample Dataset (see the module docstring)",
    )
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--lenet-batch-size",
        type=int,
        default=None,
        help="a different batch for lenet's path (large-batch recipe); default: same",
    )
    p.add_argument("--lenet-lr", type=float, default=None, help="lr for lenet's path; default --lr")
    p.add_argument("--threads", type=int, default=None, help="default: the physical cores")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the usual path")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    p.add_argument("--no-channels-last", action="store_true", help="lenet's path in NCHW")
    p.add_argument(
        "--no-fused", action="store_true", help="lenet's path without the fused CPU kernels"
    )
    p.add_argument("--skip-usual", action="store_true", help="time lenet's path only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    threads = a.threads or speed.default_threads()
    torch.set_num_threads(threads)
    lenet_bs, lenet_lr = a.lenet_batch_size or a.batch_size, a.lenet_lr or a.lr
    cl = not a.no_channels_last

    train = load_dataset(a.data, "train", data_dir=a.data_dir)
    test = load_dataset(a.data, "test", data_dir=a.data_dir)
    located, _ = resolve_source(a.data, data_dir=a.data_dir, download=False)
    raw_images, raw_labels = read_idx_pair(*located.files["train"])
    if a.limit:
        train.images, train.labels = train.images[: a.limit], train.labels[: a.limit]
        raw_images, raw_labels = raw_images[: a.limit], raw_labels[: a.limit]
    n = len(train.labels)

    torch.manual_seed(a.seed)
    init = build_model("tutorial").state_dict()
    loss_fn = build_loss("cross-entropy")

    usual = build_model("tutorial")
    usual.load_state_dict(init)
    usual.forward = types.MethodType(tutorial_forward, usual)  # the tutorial's ReLU-then-pool
    usual_opt = torch.optim.SGD(usual.parameters(), lr=a.lr, momentum=0.9)  # as tutorials write it
    loader = torch.utils.data.DataLoader(
        DATASETS[a.usual](raw_images, raw_labels, train.mean, train.std),
        batch_size=a.batch_size,
        shuffle=True,
        num_workers=a.workers,
        generator=torch.Generator().manual_seed(a.seed),
    )

    lenet = build_model("tutorial")
    lenet.load_state_dict(init)
    use_fused, note = speed.fused_choice(torch.device("cpu"), False if a.no_fused else None)
    if note:
        print(note, file=sys.stderr)
    lenet = speed.prepare_model(lenet, torch.device("cpu"), channels_last=cl, fused=use_fused)
    lenet_opt = build_optimizer(
        "sgd", lenet.parameters(), lr=lenet_lr, momentum=0.9, weight_decay=0
    )
    images = speed.prepare_inputs(train.images, cl)
    order = torch.Generator().manual_seed(a.seed)

    secs = {"usual": 0.0, "lenet": 0.0}
    epochs: list[dict] = []
    for epoch in range(1, a.epochs + 1):
        row = {"epoch": epoch, "load": [round(x, 2) for x in os.getloadavg()]}
        if not a.skip_usual:
            t0 = time.perf_counter()
            running = 0.0
            for x, y in loader:
                usual_opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(usual(x), y)
                loss.backward()
                usual_opt.step()
                running += loss.item()
            dt = time.perf_counter() - t0
            secs["usual"] += dt
            row["usual_images_per_s"] = n / dt
        t0 = time.perf_counter()
        for x, y in batches(images, train.labels, lenet_bs, generator=order):
            train_step(lenet, lenet_opt, loss_fn, x, y)
        dt = time.perf_counter() - t0
        secs["lenet"] += dt
        row["lenet_images_per_s"] = n / dt
        epochs.append(row)
        if not a.json:
            print(
                f"epoch {epoch}: "
                + ", ".join(f"{k} {v:,.0f} img/s" for k, v in row.items() if k.endswith("_per_s"))
                + f"  (load {row['load']})",
                file=sys.stderr,
            )

    def acc(model, x) -> float:
        return evaluate_tensors(model, x, test.labels, loss_fn, 1000)["accuracy"]

    result = {
        "data": train.name,
        "train_images": n,
        "test_images": len(test.labels),
        "epochs": a.epochs,
        "threads": threads,
        "torch": torch.__version__,
        "batch_size": a.batch_size,
        "lenet_batch_size": lenet_bs,
        "lr": a.lr,
        "lenet_lr": lenet_lr,
        "channels_last": cl,
        "fused": use_fused,
        "workers": a.workers,
        "usual": a.usual,
        "lenet_images_per_s": n * a.epochs / secs["lenet"],
        "lenet_test_acc": acc(lenet, speed.prepare_inputs(test.images, cl)),
        "per_epoch": epochs,
        "load_end": [round(x, 2) for x in os.getloadavg()],
    }
    if not a.skip_usual:
        result.update(
            usual_images_per_s=n * a.epochs / secs["usual"], usual_test_acc=acc(usual, test.images)
        )
        result["speedup"] = result["lenet_images_per_s"] / result["usual_images_per_s"]
    if a.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{train.name}: {n:,} training images, {a.epochs} epoch(s), {threads} thread(s), "
        f"torch {torch.__version__}, load at end {result['load_end']}"
    )
    if not a.skip_usual:
        print(
            f"  usual DataLoader pipeline ({a.usual} Dataset), batch {a.batch_size}, lr {a.lr}: "
            f"{result['usual_images_per_s']:>9,.0f} img/s, test acc "
            f"{100 * result['usual_test_acc']:.2f}%"
        )
    print(
        f"  lenet in-memory path,      batch {lenet_bs}, lr {lenet_lr}: "
        f"{result['lenet_images_per_s']:>9,.0f} img/s, test acc "
        f"{100 * result['lenet_test_acc']:.2f}%  ({'channels_last' if cl else 'NCHW'}"
        f"{', fused kernels' if use_fused else ''})"
    )
    if not a.skip_usual:
        print(f"  speed-up: {result['speedup']:.2f}x")


if __name__ == "__main__":
    main()
