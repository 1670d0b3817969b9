"""Export: a trained LeNet as .safetensors, a torch.export program (.pt2) or ONNX.

What is exported is always the plain network (``build_model`` + the weights), never the fast
CPU path: the artifact must run where lenet-cli is not installed. Each artifact carries the
input contract (1x32x32, MNIST's 28x28 padded by 2, mean/std, class names) as metadata.
``verify_export`` runs the real test set through the artifact as its own runtime would load it
(safetensors weights in a fresh ``Net``, ``torch.export.load``, onnxruntime) and compares the
scores with the checkpoint's. Nothing here prints; the ONNX exporter's chatter is swallowed.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet_cli import __version__
from lenet_cli.errors import (
    ExportMismatchError,
    MissingExtraError,
    OutputExistsError,
    WriteError,
)
from lenet_cli.files import atomic_write
from lenet_cli.model import build_model
from lenet_cli.runs.reader import class_names, run_file
from lenet_cli.use.weights import SAFETENSORS_FORMAT, safetensors_torch

FORMATS = ("safetensors", "pt2", "onnx")
SUFFIXES = {"safetensors": ".safetensors", "pt2": ".pt2", "onnx": ".onnx"}
TOLERANCE = 1e-4  # largest absolute difference of the scores that --verify accepts
_BATCH = 1000
_MAX_BATCH = 65536


def contract(meta: dict[str, Any]) -> dict[str, str]:
    """What a user of the artifact must know, as strings (safetensors and ONNX metadata)."""
    return {
        "format": SAFETENSORS_FORMAT,
        "arch": str(meta["arch"]),
        "input_shape": "1x32x32",
        "padding": "2",  # MNIST's 28x28 digits, zero-padded to LeNet's 32x32
        "mean": repr(float(meta["mean"])),
        "std": repr(float(meta["std"])),
        "data": meta.get("data") or "",
        "classes": json.dumps(class_names(meta.get("data"))),
        "lenet_cli": __version__,
    }


def default_out(source: Path, fmt: str) -> Path:
    """best.pt -> best.onnx beside it (best.export.safetensors when that would be the source)."""
    out = source.with_suffix(SUFFIXES[fmt])
    return out if out != source else source.with_name(f"{source.stem}.export{out.suffix}")


def _need(module: str, extra: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"this needs {module}, which is not installed",
            hint=f"pip install 'lenet-cli[{extra}]'",
        ) from None


def _example() -> torch.Tensor:
    return torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))


def _dynamic_batch() -> tuple[dict[int, Any]]:
    return ({0: torch.export.Dim("batch", min=1, max=_MAX_BATCH)},)


def _safetensors_bytes(model: nn.Module, meta: dict[str, Any]) -> bytes:
    # contiguous copies: a trained conv weight may be stored channels-last, safetensors refuses it
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return safetensors_torch().save(tensors, metadata=contract(meta))


def _pt2_bytes(model: nn.Module, meta: dict[str, Any]) -> bytes:
    program = torch.export.export(model, (_example(),), dynamic_shapes=_dynamic_batch())
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={"lenet.json": json.dumps(contract(meta))})
    return buffer.getvalue()


@contextlib.contextmanager
def _quiet():
    """The ONNX exporter prints progress on stdout and warns about torchvision: keep them out."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _onnx_bytes(model: nn.Module, meta: dict[str, Any]) -> bytes:
    _need("onnx", "onnx")
    _need("onnxscript", "onnx")
    with _quiet():
        program = torch.onnx.export(
            model,
            (_example(),),
            dynamo=True,
            dynamic_shapes=_dynamic_batch(),
            input_names=["image"],
            output_names=["scores"],
            verbose=False,
        )
    proto = program.model_proto
    for key, value in contract(meta).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


_WRITERS = {"safetensors": _safetensors_bytes, "pt2": _pt2_bytes, "onnx": _onnx_bytes}


def write_export(
    model: nn.Module, meta: dict[str, Any], fmt: str, out: Path, force: bool = False
) -> Path:
    """Write ``model`` (plain, in eval mode) as ``fmt`` to ``out``, atomically. A run's own
    files (its checkpoints, config, metrics...) and the source are never replaced."""
    own = run_file(out)
    source = meta.get("path")
    if own is not None or (source is not None and out.resolve() == Path(source).resolve()):
        what = f"{own.name} of the run in {own.parent}" if own else "the file exported from"
        raise OutputExistsError(
            f"--out {out} is {what}: an export never replaces it, --force or not",
            hint="name another --out; by default the export goes beside the checkpoint",
        )
    if out.exists() and not force:
        raise OutputExistsError(
            f"{out} already exists", hint="name another file with --out, or pass --force"
        )
    model = model.cpu().eval()
    data = _WRITERS[fmt](model, meta)
    try:
        with atomic_write(out) as f:
            f.write(data)
    except OSError as e:
        raise WriteError(f"cannot write {out}: {e.strerror or e}", hint="check --out") from None
    return out


def _in_batches(run, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([run(images[i : i + _BATCH]) for i in range(0, len(images), _BATCH)])


def artifact_scores(fmt: str, path: Path, arch: str, images: torch.Tensor) -> torch.Tensor:
    """The scores of ``images`` (normalised, [N, 1, 32, 32]) from the artifact as users load it."""
    if fmt == "safetensors":
        net = build_model(arch).eval()
        net.load_state_dict(safetensors_torch().load_file(str(path)))
        with torch.inference_mode():
            return _in_batches(net, images)
    if fmt == "pt2":
        module = torch.export.load(str(path)).module()
        with torch.inference_mode():
            return _in_batches(module, images)
    ort = _need("onnxruntime", "onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    return _in_batches(run, images)


def verify_export(
    model: nn.Module, fmt: str, path: Path, arch: str, images: torch.Tensor, labels: torch.Tensor
) -> dict[str, Any]:
    """Scores of the checkpoint's plain model and the artifact on the same images, compared."""
    images = images.detach().cpu().contiguous()
    labels = labels.cpu()
    with torch.inference_mode():
        want = _in_batches(model.cpu().eval(), images)
    got = artifact_scores(fmt, path, arch, images)
    diff = float((want - got).abs().max())
    result = {
        "count": int(labels.numel()),
        "max_abs_diff": diff,
        "tolerance": TOLERANCE,
        "accuracy_checkpoint": float((want.argmax(1) == labels).float().mean()),
        "accuracy_export": float((got.argmax(1) == labels).float().mean()),
        "same_predictions": int((want.argmax(1) == got.argmax(1)).sum()),
    }
    if not diff <= TOLERANCE or result["accuracy_checkpoint"] != result["accuracy_export"]:
        raise ExportMismatchError(
            f"{path} does not reproduce the checkpoint: largest score difference {diff:.3g} "
            f"(tolerance {TOLERANCE:g}), accuracy {result['accuracy_export']:.2%} vs "
            f"{result['accuracy_checkpoint']:.2%}; the file is kept for inspection",
            hint="report it with the torch and exporter versions (lenet --version, pip list)",
        )
    return result


def export_checkpoint(
    checkpoint: str | Path,
    fmt: str,
    *,
    out: Path | None = None,
    force: bool = False,
    verify: bool = False,
    data: str | None = None,
    data_dir: str | None = None,
    on_event=None,
    weights: str | None = None,
) -> dict[str, Any]:
    """Export a checkpoint, run directory or plain weights file; optionally verify it.
    ``weights``: "ema", "raw" or None, the weights the run evaluated (checkpoint.load_model)."""
    from lenet_cli.use.evaluate import model_data
    from lenet_cli.use.weights import load_model

    cpu = torch.device("cpu")
    model, meta = load_model(checkpoint, cpu, weights)  # build_model + load_state_dict
    if meta.get("notice") and on_event is not None:
        on_event({"event": "fallback", "notice": meta["notice"]})
    out = out if out is not None else default_out(Path(meta["path"]), fmt)
    write_export(model, meta, fmt, out, force)
    result: dict[str, Any] = {
        "checkpoint": meta["path"],
        "arch": meta["arch"],
        "format": fmt,
        "weights": meta["weights"],
        "out": str(out),
        "bytes": out.stat().st_size,
    }
    if verify:
        ds, images = model_data(
            meta, data=data, split="test", data_dir=data_dir, device=cpu, on_event=on_event
        )
        result["verify"] = {
            "data": ds.name,
            "split": "test",
            **verify_export(model, fmt, out, meta["arch"], images, ds.labels),
        }
    return result
