"""Checkpoints: safe to load, checked for corruption, written atomically.

File layout: the bytes of ``torch.save(payload)`` (a zip), then a fixed-length trailer
``\\nLENET-SHA256:<64 hex digits>\\n`` holding the SHA-256 of those bytes. torch's zip reader
ignores trailing bytes, so ``torch.load(path, weights_only=True)`` still opens the file; torch
itself would not notice a flipped bit in a tensor, the hash does (any byte, container included).

The payload holds tensors and plain values only and is always loaded with ``weights_only=True``
(never an unsafe fallback): a pickle that would run code is refused before anything runs.
Writes go to a temp file in the same directory, fsync, then rename, so a crash or SIGKILL while
saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet_cli.errors import CheckpointError, NonFiniteLossError
from lenet_cli.files import MAGIC as _MAGIC
from lenet_cli.files import SealError, atomic_write, read_sealed
from lenet_cli.model import build_model
from lenet_cli.runs.given import check_resumable, record_of, refuse_model
from lenet_cli.runs.payload import PayloadError, check_payload
from lenet_cli.runs.resume import check_resume

FORMAT = "lenet-cli-checkpoint"
VERSION = 1


def resolve_path(path: str | Path, prefer: tuple[str, ...] = ("best.pt", "last.pt")) -> Path:
    """A checkpoint file, or a run directory's best.pt, else last.pt (or ``prefer``'s order)."""
    path = Path(path)
    if path.is_dir():
        for name in prefer:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(
            f"no best.pt or last.pt in {path}",
            hint="pass a checkpoint file or a run directory made by `lenet train`",
        )
    if not path.is_file():
        if path.exists():  # a device, a FIFO, a socket: never read (a FIFO would block)
            raise CheckpointError(f"checkpoint {path} is not a regular file", hint="check the path")
        raise CheckpointError(f"checkpoint {path} does not exist", hint="check the path")
    return path


def weights_finite(state_dict: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in state_dict.values() if t.is_floating_point())


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format and version) atomically; refuse non-finite weights."""
    path = Path(path)
    data = checkpoint_bytes(path, payload)
    with atomic_write(path) as f:
        f.write(data)
    return path


def checkpoint_bytes(path: Path, payload: dict[str, Any]) -> bytes:
    """The bytes of the checkpoint file ``path`` would hold: payload, then its SHA-256 trailer."""
    if not weights_finite(payload["model"]):
        raise NonFiniteLossError(
            f"refusing to write {path}: the weights hold NaN or Inf",
            hint="lower --lr; the previous checkpoint is kept",
        )
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buffer)
    data = buffer.getvalue()
    return data + _MAGIC + hashlib.sha256(data).hexdigest().encode("ascii") + b"\n"


def load_refusal(e: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in lenet's words: a pickle that
    would run code (or build an object other than tensors and plain values) says so and names
    what it asks for; torch's own text, which suggests turning the check off, is never shown."""
    import pickle

    text = " ".join(str(e).split())
    operand = re.search(r"Unsupported operand (\d+)", text)
    if isinstance(e, pickle.UnpicklingError) and operand:
        # torch's restricted unpickler stops at the first byte it does not read: a picture or
        # random bytes land here, so this says what is known (not torch's format), not "code"
        return (
            f"it is not a torch.save file (byte {operand.group(1)} is not an instruction "
            "torch.save writes)"
        )
    if isinstance(e, pickle.UnpicklingError):
        asked = re.search(r"GLOBAL (\S+) was not an allowed global", text)
        detail = text.split("WeightsUnpickler error: ", 1)[-1].split(". ")[0]
        what = f"its pickle calls {asked.group(1)}" if asked else _printable(detail)[:120]
        return f"loading it would run code ({what}); lenet reads only tensors and plain values"
    first = _printable(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
    return f"it cannot be read as a torch.save file: {first[:200]}"


def _printable(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text).encode("ascii", "replace").decode()


MAX_BYTES = 256 << 20  # a LeNet checkpoint is ~1 MB with optimizer state; refuse far larger


def _refuse(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(
        f"refusing checkpoint {path}: {problem}",
        hint="use a last.pt / best.pt written by `lenet train`, or retrain",
    )


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    prefer: tuple[str, ...] = ("best.pt", "last.pt"),
    *,
    model: nn.Module | None = None,
) -> dict[str, Any]:
    """The payload of a checkpoint file or run directory, checked before it is used.

    In order: size limit and SHA-256 trailer (sealed.read_sealed: streamed, nothing parsed
    yet), a ``weights_only`` unpickling, format and version, then every field's type and range
    (payload.check_payload). Any failure is a CheckpointError naming the file and the field.
    ``model``: the nn.Module given in Python that the weights are for (runs/given.py); without
    one, a checkpoint of a model given in Python is refused.
    """
    path = resolve_path(path, prefer)
    try:
        body = read_sealed(path, MAX_BYTES)
    except SealError as e:
        raise _refuse(path, f"it {e}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    try:
        payload = torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except Exception as e:  # UnpicklingError for unsafe content; anything else is corruption
        raise _refuse(path, load_refusal(e)) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise _refuse(path, "it is not a lenet-cli checkpoint (no format field)")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {payload.get('version')!r}, "
            f"this lenet reads version {VERSION}",
            hint="upgrade lenet-cli",
        )
    record = record_of(payload, str(path))
    if "model" in record and model is None:
        raise refuse_model(str(path), record)
    try:
        check_payload(payload, str(path), model)
    except PayloadError as e:
        if model is None:
            raise _refuse(path, str(e)) from None
        trained = record.get("model") or payload.get("arch")
        raise CheckpointError(  # the weights are fine; the instance given is another network
            f"refusing checkpoint {path}: {e}",
            hint=f"pass an instance of the network it trained ({trained})",
        ) from None
    payload["path"] = str(path)
    return payload


RESUME_KEYS = ("config", "model", "optimizer", "scheduler", "state", "rng")


def load_for_resume(
    path: str | Path, *, model: nn.Module | None = None, given: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A checkpoint (a run directory's last.pt first) checked to hold what resuming needs.

    ``model`` and ``given``: what lenet_cli.train was handed in Python to resume with; they must
    be the kinds of things the run was given when it started (runs/given.py)."""
    payload = load_checkpoint(path, prefer=("last.pt",), model=model)
    where = payload["path"]
    check_resumable(where, record_of(payload, where), given)
    missing = [k for k in RESUME_KEYS if k not in payload]
    if missing:
        raise CheckpointError(
            f"checkpoint {where} cannot be resumed: it lacks {', '.join(missing)}",
            hint="resume from a last.pt written by `lenet train`",
        )
    try:
        check_resume(payload, where)
    except PayloadError as e:
        raise CheckpointError(
            f"checkpoint {where} cannot be resumed: {e}",
            hint="resume from a last.pt written by `lenet train`",
        ) from None
    return payload


def load_model(
    path: str | Path,
    device: torch.device,
    weights: str | None = None,
    model: nn.Module | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on ``device``, metadata: arch, mean, std, data, epoch, step...).

    ``weights``: "ema" (the average of ``--ema``), "raw", or None for the weights the run
    evaluated (the average when it kept one); ``meta["weights"]`` says which were loaded.
    ``model``: an nn.Module given in Python to load the weights into (else the checkpoint's
    arch is built)."""
    payload = load_checkpoint(path, model=model)
    chosen = pick_weights(payload, weights)
    model = build_model(payload["arch"]) if model is None else model
    model.load_state_dict(payload[chosen])  # names and shapes were checked: cannot fail
    model.to(device).eval()
    meta = {
        k: payload.get(k)
        for k in ("arch", "mean", "std", "data", "epoch", "step", "config", "metrics", "path")
    }
    meta["given_in_python"] = record_of(payload, payload["path"])
    meta["weights"] = "ema" if chosen == "ema" else "raw"
    return model, meta


def pick_weights(payload: dict[str, Any], weights: str | None) -> str:
    """The payload key of the weights asked for: "ema" or "model"."""
    has_ema = payload.get("ema") is not None
    if weights == "ema" and not has_ema:
        raise CheckpointError(
            f"checkpoint {payload['path']} holds no averaged weights (it was not trained with "
            "--ema)",
            hint="use --weights raw, or train with --ema DECAY",
        )
    if weights == "raw" or not has_ema:
        return "model"
    return "ema"


def rng_states() -> dict[str, Any]:
    """Every global RNG state a run touches (the data-order generator is added by the caller)."""
    import random

    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    import random

    torch.set_rng_state(states["torch"])
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
