"""Commands that show the tutorial's network: inspect-params, forward, step."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from lenet_cli import ui
from lenet_cli.cli.app import ArchOpt, DeviceOpt, JsonOpt, SeedOpt, app, setup_device
from lenet_cli.config import LossName
from lenet_cli.errors import UsageError

CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="A trained model (last.pt / best.pt, or a run directory) instead of a fresh one.",
    ),
]


def _load(arch: str, checkpoint: Path | None, seed: int, device_spec: str):
    """The model to show: the checkpoint's, or a fresh one seeded with ``seed``."""
    from lenet_cli.teach.walkthrough import seeded_model

    dev, _ = setup_device(device_spec)
    if checkpoint is not None:
        from lenet_cli.use.weights import load_model

        model, meta = load_model(checkpoint, dev)
        if meta.get("notice"):
            ui.note(meta["notice"])
        return model, meta.get("arch", arch), dev
    return seeded_model(arch, seed).to(dev), arch, dev


@app.command("inspect-params")
def inspect_params(
    arch: ArchOpt = "tutorial",
    checkpoint: CheckpointOpt = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="The fresh network of torch.manual_seed(N); net = Net(), with its values' "
            "mean, std, min and max.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Show the network, its parameter tensors with shapes and counts, and its shape trace."""
    from lenet_cli.teach.summary import model_facts

    if seed is not None and checkpoint is not None:
        raise UsageError("--seed makes a fresh network; --checkpoint loads a trained one",
                         hint="give one of them")  # fmt: skip
    model, arch, _ = _load(arch, checkpoint, seed=seed or 0, device_spec="cpu")
    facts = model_facts(model, arch, with_stats=checkpoint is not None or seed is not None)
    if json_out:
        ui.print_json(facts)
    else:
        ui.render_model_facts(facts)


@app.command()
def forward(
    random: Annotated[
        bool, typer.Option("--random", help="Forward torch.randn(N, 1, 32, 32), as the tutorial.")
    ] = False,
    image: Annotated[
        list[Path] | None,
        typer.Option(
            "--image",
            help="Forward an image file (PNG, JPEG...) prepared as MNIST was. Repeat for several.",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=65536, help="Rows of the random input.")
    ] = 1,
    seed: SeedOpt = 0,
    arch: ArchOpt = "tutorial",
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Forward an input through the network and show the [N, 10] output and its probabilities."""
    if random == bool(image):
        raise UsageError(
            "forward needs exactly one input source",
            "use --random for a random 1x1x32x32 input, or --image PATH for a picture of a digit",
        )
    if image:
        from lenet_cli.cli.use_cmds import run_predict

        run_predict(image, checkpoint=checkpoint, device=device, json_out=json_out, preview=False)
        return
    from lenet_cli.teach.walkthrough import forward_random, random_input, tutorial_start

    if checkpoint is None:  # the tutorial's draws: the network's weights, then the input
        dev, _ = setup_device(device)
        model, x = tutorial_start(arch, seed, batch_size)
    else:
        model, arch, dev = _load(arch, checkpoint, seed, device)
        x = random_input(seed, batch_size)
    result, text = forward_random(model, x, dev, seed)
    result.update(arch=arch, device=str(dev))
    if json_out:
        ui.print_json(result)
    else:
        ui.render_forward(result, text)


@app.command()
def step(
    seed: SeedOpt = 0,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate of the update.")] = 0.01,
    loss: Annotated[
        LossName,
        typer.Option(
            "--loss", help="mse (the tutorial's, random target) or cross-entropy (random class)."
        ),
    ] = "mse",
    target: Annotated[
        Literal["randn", "arange"],
        typer.Option(
            "--target",
            help="MSE target: randn (torch.randn(10)) or arange (torch.arange(1, 11)), both "
            "viewed as [1, 10].",
        ),
    ] = "randn",
    no_zero_grad: Annotated[
        bool,
        typer.Option(
            "--no-zero-grad",
            help="Skip every zero_grad: gradients pile up (the same backward twice doubles).",
        ),
    ] = False,
    arch: ArchOpt = "tutorial",
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Run the tutorial's steps 3-8 on one random input: forward, backward, loss, update."""
    from lenet_cli.config import RULES, check_value
    from lenet_cli.teach.walkthrough import tutorial_step

    check_value("--lr", lr, RULES["lr"])  # the rule of `lenet train --lr`: also nan and inf
    if target == "arange" and loss != "mse":
        raise UsageError("--target arange is a target for --loss mse", hint="add --loss mse")
    dev, _ = setup_device(device)
    result = tutorial_step(
        arch=arch,
        seed=seed,
        lr=lr,
        loss=loss,
        device=dev,
        target_kind=target,
        zero_grad=not no_zero_grad,
    )
    result["device"] = str(dev)
    if json_out:
        ui.print_json(result)
    else:
        ui.render_step(result)
