"""Writing matplotlib figures as PNG files. matplotlib is imported on first use only,
so `lenet --help` never loads it; the Agg backend draws without a display."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from lenet_cli.errors import WriteError
from lenet_cli.files import atomic_write

DPI = 100  # figure sizes below are in inches at this density: 1 inch = 100 pixels


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no window, no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "figure.dpi": DPI})
    return plt


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` atomically (the old file, if any, stays whole on failure)."""
    plt = pyplot()
    path = Path(path)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    finally:
        plt.close(fig)
    return write_png(buffer.getvalue(), path)


def write_png(data: bytes, path: str | Path) -> Path:
    """Write PNG bytes to ``path`` atomically: a failure (a full disk) is a WriteError, and the
    old file, if any, stays whole."""
    path = Path(path)
    try:
        with atomic_write(path) as f:
            f.write(data)
    except OSError as e:
        kept = "the old file is kept" if path.exists() else "nothing was written"
        raise WriteError(f"cannot write {path}: {e.strerror or e}", hint=kept) from None
    return path


def signed_limits(*arrays: Any) -> float:
    """One symmetric colour limit for arrays of signed values (so that 0 is the middle colour)."""
    import numpy as np

    peak = max(float(np.abs(np.asarray(a)).max()) for a in arrays)
    return peak if peak > 0 else 1.0
