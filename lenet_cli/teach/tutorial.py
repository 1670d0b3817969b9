"""`lenet tutorial`: the tutorial's steps 1-9, each with its text, code and numbers.

The words live in ``texts/tutorial.toml``; this module computes each step's values with the
same engines as `inspect-params`, `forward` and `step` (so the numbers are theirs), and step 9
trains the network for one epoch on the bundled sample with the tutorial's plain loop. Steps
are yielded one at a time, so a paused tutorial computes nothing ahead. Nothing here prints.
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


def load_text(path: Path = TEXT) -> list[dict[str, str]]:
    """The steps' words: title, text, code and output template of each."""
    doc = read_toml(path, what="the tutorial's text", hint="reinstall lenet-cli")
    steps = doc.get("step")
    if not isinstance(steps, list) or not steps:
        raise ConfigError(f"the tutorial's text {path} has no [[step]] tables")
    keys = ("title", "text", "code", "output")
    return [{k: str(s.get(k, "")).strip("\n") for k in keys} for s in steps]


def _values(seed: int) -> Iterator[dict[str, Any]]:
    """Each step's numbers, computed when asked for."""
    from lenet_cli.teach.summary import model_facts
    from lenet_cli.teach.walkthrough import forward_random, seeded_model, tutorial_step

    net = seeded_model("tutorial", seed)
    yield {"module": repr(net)}
    facts = model_facts(net, "tutorial")
    table = [
        f"  {r['name']:<13} {str(r['shape']):<15} {r['count']:>7,}" for r in facts["parameters"]
    ]
    yield {"count": facts["tensors"], "total": f"{facts['total']:,}", "table": "\n".join(table)}
    _, text = forward_random(net, torch.device("cpu"), batch_size=1, seed=seed)
    yield {"tensor": text}
    s = tutorial_step(seed=seed)
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
    yield train_one_epoch(seed)


def train_one_epoch(seed: int, index: int = 0, on_event=None) -> dict[str, Any]:  # noqa: ANN001
    """Step 9: the tutorial's training loop for one epoch on the bundled sample, the test
    accuracy, and every layer's output for test digit ``index``."""
    from lenet_cli.data import batches, load_dataset
    from lenet_cli.teach.activations import activations
    from lenet_cli.teach.walkthrough import seeded_model
    from lenet_cli.use.evaluate import evaluate_tensors

    train = load_dataset("mnist-sample", "train", on_event=on_event)
    test = load_dataset("mnist-sample", "test", on_event=on_event)
    net = seeded_model("tutorial", seed)
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
    values = activations(net, test.images[index : index + 1], "tutorial")
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


def tutorial_steps(seed: int = 0) -> Iterator[dict[str, Any]]:
    """The steps in order: number, title, text, code, output template and values."""
    for number, (words, values) in enumerate(zip(load_text(), _values(seed), strict=False), 1):
        yield {"number": number, **words, "values": values}
