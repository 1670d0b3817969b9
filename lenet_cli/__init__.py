"""lenet-cli: the PyTorch tutorial's LeNet as a command-line tool, a fast trainer for it, and the
same as a Python library (docs/api.md)::

    import lenet_cli as lenet
    res = lenet.train(epochs=3, out="runs", name="nb", callbacks=[...])
    net = lenet.load(res.run_dir)
    lenet.evaluate(net, data="mnist")
    lenet.predict(net, ["digit.png"])
    lenet.export(res.run_dir, format="onnx", out="m.onnx", verify=True)

Importing the package imports no torch: each function imports the engines when it is called.
Errors are the exceptions of ``lenet_cli.errors``, the ones whose exit codes the CLI prints.
Notes and progress go to stderr, as the commands' do.
"""

from __future__ import annotations

import sys as _sys

try:
    import dataclasses as _dataclasses
    import inspect as _inspect
    import os as _os
    from typing import Any

    from lenet_cli.config import TrainConfig as _TrainConfig
    from lenet_cli.config import flag_name as _flag_name
except KeyboardInterrupt:  # Ctrl-C as `lenet` starts: one line and exit 130, as later on
    # the command: its script (argv[0] .../lenet), or `python -m lenet_cli` ("-m" while the
    # package imports); any other program importing the library gets its KeyboardInterrupt
    _started_as = (_sys.argv or [""])[0].replace("\\", "/").rpartition("/")[2]
    if _started_as not in ("-m", "lenet", "lenet.exe"):
        raise
    from lenet_cli.scale.launch import interrupted_while_starting

    interrupted_while_starting()

__version__ = "0.1.0"
__all__ = ["__version__", "evaluate", "export", "load", "predict", "train"]


def _net(net: Any) -> Any:
    """What evaluate and predict run: a model, a TrainResult's model, or a path loaded."""
    if isinstance(net, (str, _os.PathLike)):
        return load(net)
    return getattr(net, "model", net) if hasattr(net, "run_dir") else net


def _notes() -> Any:
    """Notices (fallbacks, what was assumed) on stderr, as the commands print them."""
    from lenet_cli import ui

    return ui.TrainProgress("none")


def train(
    config: Any = None,
    *,
    data: Any = None,
    test_data: Any = None,
    model: Any = None,
    callbacks: Any = (),
    resume: Any = None,
    restart_schedule: bool = False,
    **options: Any,
) -> Any:
    """Train as ``lenet train`` does; returns a TrainResult (run_dir, metrics, model, summary).

    ``config``: a TOML file (defaults < file < keywords). ``data``: a data set's name, or
    ``(images, labels)`` (images [N, 28|32, 28|32] or [N, 1, ...], uint8 0..255 or float 0..1;
    labels [N] in 0..9) with ``test_data=(images, labels)``, else a seeded tenth of ``data`` is
    the test set. ``model``: an ``nn.Module`` mapping [N, 1, 32, 32] to [N, 10] (PyTorch's ops;
    the fused C step runs the built-in networks only). ``callbacks``: objects with any of
    ``on_train_start(run)``, ``on_step_end(run, step, loss)``, ``on_epoch_end(run, row)``,
    ``on_train_end(run, summary)``; returning "stop" ends training after saving.
    ``resume``: a run directory or checkpoint to continue. Every other keyword is a ``lenet
    train`` option (listed below; None: its default), checked as the flag is.
    Ctrl-C saves last.pt and raises KeyboardInterrupt; the process's signal handlers, thread
    count and random states are as before when it returns.
    """
    from lenet_cli import ui
    from lenet_cli.training import api

    prepared = api.prepare(
        config,
        data=data,
        test_data=test_data,
        model=model,
        callbacks=callbacks,
        resume=resume,
        restart_schedule=restart_schedule,
        nproc=options.pop("nproc", None),
        options=options,
    )
    render = ui.TrainProgress(ui.progress_mode(prepared.plan.config.progress))
    try:
        return api.run(
            prepared,
            on_event=render,
            progress_interval=0.2 if render.mode == "rich" else None,
        )
    finally:
        render.close()


def load(path: Any, *, model: Any = None, weights: str | None = None, device: str = "cpu") -> Any:
    """A checkpoint, run directory (best.pt, else last.pt), ``torch.save(state_dict)`` file or
    .safetensors file as an ``nn.Module`` in eval mode. ``model``: an instance to load the
    weights into (required for a run whose model was given in Python). ``weights``: "ema",
    "raw", or None for the weights the run evaluated."""
    from lenet_cli.use import api

    return api.load(path, model=model, weights=weights, device=device, on_event=_notes())


def evaluate(
    net: Any,
    data: Any = None,
    data_dir: Any = None,
    *,
    split: str = "test",
    batch_size: int = 1000,
    device: str | None = None,
) -> dict[str, Any]:
    """Loss, accuracy (a fraction), per_class and confusion of ``net`` (a model, a
    TrainResult, or a path that ``load`` reads) on ``data``: a data set's name (default: the
    one it was trained on) or ``(images, labels)``. ``device``: where to run (the model moves
    there); default where its parameters are."""
    from lenet_cli.use import api

    return api.evaluate(
        _net(net),
        data,
        data_dir,
        split=split,
        batch_size=batch_size,
        device=device,
        on_event=_notes(),
    )


def predict(
    net: Any, images: Any, *, device: str | None = None, preview: bool = False
) -> list[dict[str, Any]]:
    """What ``lenet predict --json`` says of each picture (``net`` as for evaluate): file,
    predicted, probabilities.
    ``images``: paths, PIL images or arrays ([H, W] each, or [N, H, W] for N pictures),
    prepared as MNIST's digits were. ``preview``: also "input", the 32x32 the network saw."""
    from lenet_cli.use import api

    return api.predict(_net(net), images, device=device, preview=preview, on_event=_notes())


def export(
    run_or_path: Any,
    *,
    format: str,  # noqa: A002  (`lenet export --format`)
    out: Any = None,
    verify: bool = False,
    data: str | None = None,
    data_dir: Any = None,
    force: bool = False,
    weights: str | None = None,
) -> dict[str, Any]:
    """``lenet export``: a run directory, checkpoint or TrainResult as "safetensors", "pt2"
    or "onnx" (``out``: default beside the checkpoint); ``verify`` runs the test set through
    the file and compares (ExportMismatchError otherwise). Returns what ``--json`` prints."""
    from lenet_cli.use import api

    return api.export(
        run_or_path,
        format=format,
        out=out,
        verify=verify,
        data=data,
        data_dir=data_dir,
        force=force,
        weights=weights,
        on_event=_notes(),
    )


def _train_signature() -> None:
    """``train``'s signature and help list every ``lenet train`` option, from TrainConfig's
    fields (the one declaration the flags come from too)."""
    sig = _inspect.signature(train)
    own = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    fields = [f for f in _dataclasses.fields(_TrainConfig) if f.name not in sig.parameters]
    keyword = _inspect.Parameter.KEYWORD_ONLY
    options = [_inspect.Parameter(f.name, keyword, default=None) for f in fields]
    train.__signature__ = sig.replace(parameters=own + options)  # type: ignore[attr-defined]
    lines = [
        f"    {f.name} ({_flag_name(f.name)}): {f.metadata['help']}"
        + (f" Default: {f.default}." if f.default is not None else "")
        for f in fields
    ]
    train.__doc__ = f"{train.__doc__}\n    Options:\n\n" + "\n".join(lines) + "\n"


_train_signature()
