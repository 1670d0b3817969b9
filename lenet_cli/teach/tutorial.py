"""`lenet tutorial`: the tutorial's steps 1-9, each with its text, code and numbers.

The words live in ``texts/tutorial.toml``; this module computes each step's values with the
same engines as `inspect-params`, `forward` and `step` (so the numbers are theirs, and those the
tutorial's own code prints after ``torch.manual_seed(seed)``), and step 9 trains the network for
one epoch on the bundled sample with the tutorial's plain loop. ``arch`` picks the network
(tutorial: 3x3 kernels, lenet5: the current tutorial's 5x5, classic: LeNet-5 of 1998), whose
code and shape arithmetic the texts show. Steps are yielded one at a time, so a paused tutorial
computes nothing ahead. Nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet_cli.config import read_toml
from lenet_cli.errors import ConfigError

TEXT = Path(__file__).parent / "texts" / "tutorial.toml"


def load_text(arch: str = "tutorial", seed: int = 0, path: Path = TEXT) -> list[dict[str, str]]:
    """The steps' words for the network ``arch``: title, text, code and output template of
    each (the texts and code with the network's words and numbers filled in)."""
    doc = read_toml(path, what="the tutorial's text", hint="reinstall lenet-cli")
    steps = doc.get("step")
    if not isinstance(steps, list) or not steps:
        raise ConfigError(f"the tutorial's text {path} has no [[step]] tables")
    words = doc.get("arch", {}).get(arch)
    if not isinstance(words, dict):
        raise ConfigError(f"the tutorial's text {path} has no [arch.{arch}] table")
    fill = {**{k: str(v) for k, v in words.items()}, **arch_numbers(arch), "seed": seed}
    filled = ("text", "code")
    return [
        {k: str(s.get(k, "")).strip("\n").format(**fill) if k in filled else
            str(s.get(k, "")).strip("\n") for k in ("title", "text", "code", "output")}
        for s in steps
    ]  # fmt: skip


def arch_numbers(arch: str) -> dict[str, Any]:
    """The kernel size k, the side of conv2's pooled maps, fc1's inputs, the shape trace and the
    class name of the network ``arch`` (read off a network built without touching the global
    generator)."""
    from lenet_cli.model import build_model

    with torch.random.fork_rng():
        net = build_model(arch)
    k = net.conv1.kernel_size[0]
    c1 = 32 - k + 1
    c2 = c1 // 2 - k + 1
    side = c2 // 2
    trace = f"32 -conv-> {c1} -pool-> {c1 // 2} -conv-> {c2} -pool-> {side}"
    return {
        "k": k,
        "side": side,
        "fc1_in": 16 * side * side,
        "trace": trace,
        "net_class": type(net).__name__,
    }


def _values(seed: int, arch: str = "tutorial") -> Iterator[dict[str, Any]]:
    """Each step's numbers, computed when asked for."""
    from lenet_cli.teach.summary import model_facts
    from lenet_cli.teach.walkthrough import forward_random, tutorial_start, tutorial_step

    net, x = tutorial_start(arch, seed)  # net = Net(); input = torch.randn(1, 1, 32, 32)
    yield {"module": repr(net)}
    facts = model_facts(net, arch)
    table = [
        f"  {r['name']:<13} {str(r['shape']):<15} {r['count']:>7,}" for r in facts["parameters"]
    ]
    yield {"count": facts["tensors"], "total": f"{facts['total']:,}", "table": "\n".join(table)}
    _, text = forward_random(net, x, torch.device("cpu"), seed)
    yield {"tensor": text}
    s = tutorial_step(arch=arch, seed=seed)
    yield {"random_grad": s["random_backward_conv1_bias_grad"]}
    yield {
        "output_shape": s["output_shape"],
        "target_shape": s["target_shape"],
        "loss": s["loss_before"],
    }
    yield {"grad_before": s["conv1_bias_grad_before"], "grad_after": s["conv1_bias_grad_after"]}
    yield {"loss": s["loss_before"], "loss_after_manual": s["loss_after_manual"]}
    yield {
        "loss": s["loss_before"],
        "loss_after_sgd": s["loss_after_sgd"],
        "diff": s["manual_vs_sgd_max_abs_diff"],
    }
    yield train_one_epoch(seed, arch=arch)


def train_one_epoch(
    seed: int,
    index: int = 0,
    on_event=None,
    arch: str = "tutorial",  # noqa: ANN001
) -> dict[str, Any]:
    """Step 9: the tutorial's training loop for one epoch on the bundled sample, the test
    accuracy, and every layer's output for test digit ``index``."""
    from lenet_cli.data import batches, load_dataset
    from lenet_cli.teach.activations import activations
    from lenet_cli.teach.walkthrough import seeded_model
    from lenet_cli.use.evaluate import evaluate_tensors

    train = load_dataset("mnist-sample", "train", on_event=on_event)
    test = load_dataset("mnist-sample", "test", on_event=on_event)
    net = seeded_model(arch, seed)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    start, steps = time.perf_counter(), 0
    for images, labels in batches(train.images, train.labels, 64, generator=generator):
        optimizer.zero_grad()
        loss = criterion(net(images), labels)
        loss.backward()
        optimizer.step()
        steps += 1
    seconds = time.perf_counter() - start
    result = evaluate_tensors(net, test.images, test.labels, criterion)
    values = activations(net, test.images[index : index + 1], arch)
    return {
        "train_count": f"{len(train):,}",
        "steps": steps,
        "seconds": seconds,
        "last_loss": loss.item(),
        "test_acc": result["accuracy"],
        "test_count": f"{len(test):,}",
        "index": index,
        "label": int(test.labels[index]),
        "predicted": int(values["softmax"].argmax()),
        "probability": float(values["softmax"].max()),
        "activations": values,
        "data": test.name,
    }


def tutorial_steps(seed: int = 0, arch: str = "tutorial") -> Iterator[dict[str, Any]]:
    """The steps in order: number, title, text, code, output template and values."""
    steps = zip(load_text(arch, seed), _values(seed, arch), strict=False)
    for number, (words, values) in enumerate(steps, 1):
        yield {"number": number, **words, "values": values}
