"""Checking data on disk: ``verify`` (full validation), ``import_source`` (validate, then copy
into the cache atomically) and ``list_sources`` (what is where, from headers only).

Local files are verified structurally -- every IDX check, image and label counts -- and the MD5
is reported as matching the published .gz or not: re-compressed copies (Debian's, the bundled
sample) hold the same content in different bytes. Downloads, by contrast, must match the MD5.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from lenet_cli.data.fetch import md5_file
from lenet_cli.data.identity import check_identity, fingerprint
from lenet_cli.data.idx import read_header, read_idx_pair
from lenet_cli.data.sources import (
    FILES,
    IDX_SOURCES,
    SOURCES,
    SPECS,
    Located,
    cache_dir,
    locate,
)
from lenet_cli.errors import DataError, DataNotFoundError, UsageError, WriteError
from lenet_cli.files import atomic_write


def _check_name(name: str, allowed: tuple[str, ...]) -> None:
    if name not in allowed:
        raise UsageError(
            f"unknown data source {name!r}", hint="choose one of " + ", ".join(allowed)
        )


def _canonical(name: str, path: Path, md5: str) -> bool | None:
    published = SPECS[name].md5
    key = path.name.replace(".idx", "-idx")
    return (published[key] == md5) if key in published else None


def _file_report(name: str, split: str, kind: str, path: Path, with_md5: bool) -> dict:
    report = {"split": split, "kind": kind, "path": str(path), "bytes": path.stat().st_size}
    if with_md5:
        md5 = md5_file(path)
        report.update(md5=md5, canonical_md5=_canonical(name, path, md5))
    return report


def _not_found(name: str, tried: list[str]) -> DataNotFoundError:
    from lenet_cli.data.load import fixes

    return DataNotFoundError(f"no {name} data found; tried: " + "; ".join(tried), hint=fixes(name))


def check_located(located: Located) -> dict:
    """Fully validate the four files of ``located``: a report dict, ``ok`` False on problems."""
    name = located.name
    spec = SPECS[name]
    report = {
        "name": name,
        "where": located.where,
        "directory": str(located.directory),
        "files": [],
        "counts": {},
        "problems": [],
        "notes": [],
    }
    for split, (images, labels) in located.files.items():
        for kind, path in (("images", images), ("labels", labels)):
            report["files"].append(_file_report(name, split, kind, path, with_md5=True))
        try:
            x, y = read_idx_pair(images, labels)
        except DataError as exc:
            report["problems"].append(exc.message)
            continue
        report["counts"][split] = int(x.shape[0])
        try:  # the right format is not the right data: Fashion-MNIST's files are valid IDX
            check_identity(name, split, fingerprint(x, y), y, str(located.directory))
        except DataError as exc:
            report["problems"].append(exc.message)
        canonical = spec.counts.get(split)
        if canonical and x.shape[0] != canonical:
            report["notes"].append(
                f"{split}: {x.shape[0]:,} examples (the full set has {canonical:,})"
            )
    if all(f.get("canonical_md5") is False for f in report["files"]):
        report["notes"].append("content checked; the .gz bytes differ from the published ones")
    report["ok"] = not report["problems"]
    return report


def verify(name: str, data_dir: str | Path | None = None) -> dict:
    """Find ``name`` (no download) and validate every file. Raises DataNotFoundError if absent."""
    _check_name(name, SOURCES)
    if name == "random":
        return {
            "name": name,
            "where": "generated",
            "directory": None,
            "files": [],
            "counts": {},
            "problems": [],
            "notes": ["generated from a seed"],
            "ok": True,
        }
    located, tried = locate(name, data_dir)
    if located is None:
        raise _not_found(name, tried)
    return check_located(located)


def import_source(
    name: str, directory: str | Path, *, on_event: Callable[[dict], None] | None = None
) -> dict:
    """Validate the IDX files in ``directory`` and copy them into the cache for ``name``.

    Nothing is copied unless all four files pass; each copy is atomic. Returns the report of
    the imported copy (as ``verify``).
    """
    _check_name(name, tuple(n for n in IDX_SOURCES if n != "mnist-sample"))
    located, tried = locate(name, directory)
    if located is None:
        raise _not_found(name, tried)
    report = check_located(located)
    if not report["ok"]:
        raise DataError(
            f"not importing {name}: " + "; ".join(report["problems"]),
            hint="nothing was copied; import the files under the name of the data they hold",
        )
    target = cache_dir(name)
    try:
        target.mkdir(parents=True, exist_ok=True)
        for split, pair in located.files.items():
            for stem, src in zip(FILES[split], pair, strict=True):
                gz = src.name.endswith(".gz")
                dest = target / (stem + (".gz" if gz else ""))
                if on_event:
                    on_event({"event": "import", "file": str(src), "dest": str(dest)})
                with atomic_write(dest) as out, open(src, "rb") as inp:
                    shutil.copyfileobj(inp, out, 1 << 20)
                other = target / (stem if gz else stem + ".gz")
                other.unlink(missing_ok=True)  # the other form would shadow or confuse
    except OSError as exc:
        raise WriteError(
            f"cannot write into {target}: {exc.strerror or exc}",
            hint="each file is written whole or not at all; free space and import again",
        ) from None
    imported, _ = locate(name)
    return check_located(imported) if imported is not None else report


def list_sources(*, checksums: bool = True) -> list[dict]:
    """One dict per source: where it was found, example counts (from headers), bytes, MD5 state."""
    rows = []
    for name in SOURCES:
        if name == "random":
            rows.append(
                {
                    "name": name,
                    "title": "seeded random images, labels 0-9",
                    "found": True,
                    "where": "generated",
                    "directory": None,
                    "counts": {},
                    "bytes": 0,
                    "checksum": None,
                    "problems": [],
                    "downloadable": False,
                }
            )
            continue
        spec = SPECS[name]
        located, tried = locate(name)
        row = {
            "name": name,
            "title": spec.title,
            "found": located is not None,
            "where": located.where if located else None,
            "directory": str(located.directory) if located else None,
            "counts": {},
            "bytes": 0,
            "checksum": None,
            "problems": [],
            "downloadable": bool(spec.mirrors),
            "tried": tried,
        }
        if located is not None:
            states = set()
            for split, (images, _labels) in located.files.items():
                try:
                    row["counts"][split] = read_header(images)[1][0]
                except DataError as exc:
                    row["problems"].append(exc.message)
            for path in located.paths():
                row["bytes"] += path.stat().st_size
                if checksums:
                    states.add(_canonical(name, path, md5_file(path)))
            if checksums:
                row["checksum"] = (
                    "published" if states == {True} else "unknown" if None in states else "differs"
                )
        rows.append(row)
    return rows
