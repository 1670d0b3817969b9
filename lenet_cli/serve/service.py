"""What `lenet serve` answers, without the web (nothing printed, no FastAPI here).

A picture arrives as bytes and never touches the disk. Its size is checked first (the body, then
the pixel count from the image header, before anything is decoded); then ``use/predict.py``
prepares and classifies it exactly as `lenet predict` does, and ``teach/activations.py`` traces
it layer by layer as `lenet activations` does.

The model is read-only and shared by every request: predictions run concurrently on it (no
gradients, nothing written). ``activations`` hooks the layers it traces, and a hook sees every
forward pass of its module, so tracing runs on a second copy of the weights, one request at a
time.
"""

from __future__ import annotations

import copy
import io
import threading
import warnings
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from lenet_cli.errors import ImageError, LenetError, NoInkError
from lenet_cli.runs.reader import checkpoint_or_newest, class_names, read_metrics
from lenet_cli.teach.activations import activations as layer_outputs
from lenet_cli.teach.activations import describe
from lenet_cli.use.predict import Upload, classify, prepare_image
from lenet_cli.use.weights import load_model

MAX_BODY = 2 * 1024 * 1024  # bytes: a photo scaled to 1024 px is far below
MAX_SIDE = 4096  # pixels a side; more is refused before it is decoded


class Refused(Exception):
    """An upload the service will not answer: the HTTP status and one message for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_picture(data: bytes) -> None:
    """The limits that hold before a picture is decoded: not empty, at most MAX_BODY bytes, an
    image format Pillow knows, at most MAX_SIDE pixels a side (a decompression bomb is a small
    file that says it is huge)."""
    if not data:
        raise Refused(400, "the body is empty: send the bytes of a PNG or JPEG picture")
    if len(data) > MAX_BODY:
        raise Refused(
            413, f"the picture is {len(data):,} bytes, more than {MAX_BODY:,}: scale it down"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
    except UnidentifiedImageError:
        raise Refused(
            400, "the body is not a picture Pillow can read: send a PNG or JPEG"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Refused(
            413, "refused as a possible decompression bomb: send a smaller picture"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise Refused(400, f"the picture cannot be read: {e}") from None
    if w > MAX_SIDE or h > MAX_SIDE:
        raise Refused(
            413, f"the picture is {w}x{h} pixels, more than {MAX_SIDE}x{MAX_SIDE}: scale it down"
        )


def _test_accuracy(meta: dict[str, Any]) -> float | None:
    """The test accuracy its run logged for the checkpoint's epoch, when there is one."""
    if meta.get("epoch") is None:
        return None  # plain weights: nothing recorded
    if meta.get("weights") == "raw" and (meta.get("config") or {}).get("ema") is not None:
        return None  # the run logged its average's accuracy (--ema), not these weights'
    try:
        rows = read_metrics(Path(meta["path"]).parent)
    except LenetError:  # no or a damaged metrics.jsonl: the model still answers
        return None
    accs = [r["test_acc"] for r in rows if r["epoch"] == meta["epoch"]]
    return accs[-1] if accs else None


class Service:
    """One model answering pictures: ``predict``, ``activations`` and ``info`` (plain dicts)."""

    def __init__(self, model: Any, meta: dict[str, Any], notice: str = "") -> None:
        self.model = model.eval().requires_grad_(False)
        self.meta = meta
        self.notice = notice
        self.device = torch.device("cpu")
        self._tracer = copy.deepcopy(self.model)  # hooked by `activations`: see the docstring
        self._tracing = threading.Lock()
        self.names = class_names(meta.get("data"))
        probe = layer_outputs(self._tracer, torch.zeros(1, 1, 32, 32), meta["arch"])
        self.info = {
            "checkpoint": meta["path"],
            "arch": meta["arch"],
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "data": meta.get("data"),
            "epoch": meta.get("epoch"),
            "weights": meta.get("weights", "raw"),
            "test_accuracy": _test_accuracy(meta),
            "class_names": self.names,
            "activation": "tanh" if meta["arch"] == "classic" else "ReLU",
            "shapes": {k: list(v.shape) for k, v in probe.items()},
            "limits": {"bytes": MAX_BODY, "side": MAX_SIDE},
        }

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, weights: str | None = None) -> Service:
        """The model of a checkpoint, run directory or weights file, loaded as `lenet predict`
        loads it (None: the newest run under runs/, said in ``notice``); ``weights``: "ema",
        "raw" or None, the weights the run evaluated (`lenet predict --weights`)."""
        path, notice = checkpoint_or_newest(None if checkpoint is None else Path(checkpoint))
        model, meta = load_model(path, torch.device("cpu"), weights)
        notices = [n for n in (notice, meta.get("notice")) if n]
        return cls(model, meta, "; ".join(notices))

    def _prepare(self, data: bytes) -> tuple[Upload, Any]:
        """The upload checked and prepared as `lenet predict` prepares a file."""
        check_picture(data)
        upload = Upload("upload", data)
        try:
            return upload, prepare_image(upload, self.meta["mean"], self.meta["std"])
        except NoInkError as e:
            raise Refused(422, str(e)) from None
        except ImageError as e:
            raise Refused(400, str(e)) from None

    def predict(self, data: bytes) -> dict[str, Any]:
        """``lenet predict --json --preview``'s result for the picture: predicted,
        probabilities, input (the 32x32 the network reads), warnings."""
        upload, prepared = self._prepare(data)
        result = classify([prepared], [upload], self.model, self.device)[0]
        result.pop("file")
        result.setdefault("warnings", [])
        return result

    def activations(self, data: bytes) -> dict[str, Any]:
        """``lenet activations --json``'s document for the picture: every stage's values."""
        _, prepared = self._prepare(data)
        with self._tracing:
            values = layer_outputs(self._tracer, prepared[0].unsqueeze(0), self.meta["arch"])
        return {
            "checkpoint": self.meta["path"],
            "arch": self.meta["arch"],
            "source": "upload",
            "label": None,
            "predicted": int(values["softmax"].argmax()),
            "class_names": self.names,
            "png": None,
            "stages": describe(values),
        }
