"""The metadata of a .safetensors weights file, read back as user input: checked as a
checkpoint's fields are (``arch``, ``data``, ``mean`` and ``std``)."""

from __future__ import annotations

from typing import Any

from lenet_cli.runs.readback import shown


def weights_metadata(header: Any, ours: str) -> dict[str, Any]:
    """A .safetensors file's metadata checked as a checkpoint's fields are: ``arch`` (when the
    file says it was written by lenet: ``format`` = ``ours``), ``data``, ``mean`` and ``std``
    (both or neither). Returns them (None where absent); raises ValueError naming the field."""
    from lenet_cli.config import ARCHES, DATA_NAMES

    if not isinstance(header, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in header.items()
    ):
        raise ValueError("its metadata is not a table of text")
    arch = header.get("arch") if header.get("format") == ours else None
    if arch is not None and arch not in ARCHES:
        raise ValueError(f"its metadata says arch = {shown(arch)}, not one of {', '.join(ARCHES)}")
    data = header.get("data") or None
    if data is not None and data not in DATA_NAMES:
        raise ValueError(
            f"its metadata says data = {shown(data)}, not one of {', '.join(DATA_NAMES)}"
        )
    given = [k for k in ("mean", "std") if k in header]
    if len(given) == 1:
        missing = "std" if given == ["mean"] else "mean"
        raise ValueError(f"its metadata gives {given[0]} but no {missing}")
    mean = std = None
    if given:
        try:
            mean, std = float(header["mean"]), float(header["std"])
        except ValueError:
            raise ValueError(
                f"its metadata says mean = {shown(header['mean'])}, std = {shown(header['std'])}:"
                " not numbers"
            ) from None
        if not (0 <= mean <= 1 and 0 < std <= 1):  # also False for NaN
            raise ValueError(f"its metadata says mean {mean}, std {std}: not in [0, 1] and (0, 1]")
    return {"arch": arch, "data": data, "mean": mean, "std": std}
