"""Where each data set comes from: names, file names, published checksums, mirrors, and the
places on disk that are searched, in order.

Search order for ``mnist``, ``fashion-mnist`` and ``kmnist``: an explicit ``data_dir`` (only that
one: a directory the user names and that holds nothing is reported, not silently replaced);
otherwise ``$LENET_DATA_DIR``, the user cache (``$XDG_CACHE_HOME/lenet/<name>`` else
``~/.cache/lenet/<name>``), then known system locations. Downloads (download.py) come after.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lenet_cli.config import DATA_NAMES
from lenet_cli.errors import UsageError

SOURCES: tuple[str, ...] = DATA_NAMES  # one list of names for the CLI, configs and this layer
IDX_SOURCES: tuple[str, ...] = ("mnist", "mnist-sample", "fashion-mnist", "kmnist")
SPLITS: tuple[str, ...] = ("train", "test")
# Stem of each file, per split: (images, labels); found as STEM.gz, STEM, or with '.idx' (Kaggle).
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
BUNDLED_DIR = Path(__file__).resolve().parent / "mnist_sample"


@dataclass(frozen=True)
class SourceSpec:
    name: str
    title: str
    # MD5 of the canonical .gz files as published (torchvision uses the same values).
    md5: dict[str, str] = field(default_factory=dict)
    mirrors: tuple[str, ...] = ()
    system_dirs: tuple[str, ...] = ()
    torchvision_dir: str = ""  # DIR/<this>/raw is where torchvision keeps the files
    counts: dict[str, int] = field(default_factory=dict)  # canonical example counts
    licence: str = ""


_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

SPECS: dict[str, SourceSpec] = {
    "mnist": SourceSpec(
        "mnist",
        "MNIST handwritten digits",
        md5=_MNIST_MD5,
        # yann.lecun.com, the original host, now answers 403/404: not listed.
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        torchvision_dir="MNIST",
        counts={"train": 60000, "test": 10000},
        licence="CC BY-SA 3.0 (Y. LeCun, C. Cortes, C. J. C. Burges)",
    ),
    "mnist-sample": SourceSpec(
        "mnist-sample",
        "bundled MNIST sample (5,000 training digits, full test set)",
        md5=_MNIST_MD5,  # only to report "not the canonical bytes": the sample is re-packed
        counts={"train": 5000, "test": 10000},
        licence="CC BY-SA 3.0 (see lenet_cli/data/mnist_sample/README.md)",
    ),
    "fashion-mnist": SourceSpec(
        "fashion-mnist",
        "Fashion-MNIST (Zalando)",
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        mirrors=(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        # Debian's dataset-fashion-mnist package (its .gz bytes are re-compressed: the content
        # validates, the MD5 differs from the published one).
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        torchvision_dir="FashionMNIST",
        counts={"train": 60000, "test": 10000},
        licence="MIT (Zalando SE)",
    ),
    "kmnist": SourceSpec(
        "kmnist",
        "Kuzushiji-MNIST (ROIS-DS CODH)",
        md5={
            "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
        },
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        torchvision_dir="KMNIST",
        counts={"train": 60000, "test": 10000},
        licence="CC BY-SA 4.0 (ROIS-DS Center for Open Data in the Humanities)",
    ),
}


@dataclass(frozen=True)
class Located:
    """A complete set of the four IDX files for one source."""

    name: str
    where: str  # how it was found: "--data-dir", "LENET_DATA_DIR", "cache", "system", "bundled"
    directory: Path
    files: dict[str, tuple[Path, Path]]  # split -> (images, labels)

    def paths(self) -> list[Path]:
        return [p for pair in self.files.values() for p in pair]


def cache_root() -> Path:
    """The user cache: ``$XDG_CACHE_HOME/lenet`` if set (and absolute), else ``~/.cache/lenet``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "lenet"


def cache_dir(name: str) -> Path:
    return cache_root() / name


def _file_in(directory: Path, stem: str) -> Path | None:
    kaggle = stem.replace("-idx", ".idx")
    for candidate in (f"{stem}.gz", stem, f"{kaggle}.gz", kaggle):
        path = directory / candidate
        if path.is_file():
            return path
    return None


def _complete_set(name: str, directory: Path, where: str) -> Located | None:
    """The four files in ``directory`` or its usual sub-folders, or None."""
    spec = SPECS.get(name)
    subdirs = [directory, directory / name]
    if spec is not None and spec.torchvision_dir:
        subdirs.append(directory / spec.torchvision_dir / "raw")
    for d in subdirs:
        files = {}
        for split, (img, lab) in FILES.items():
            pair = (_file_in(d, img), _file_in(d, lab))
            if pair[0] is None or pair[1] is None:
                break
            files[split] = pair
        else:
            return Located(name, where, d, files)
    return None


def search_places(name: str, data_dir: str | Path | None = None) -> list[tuple[str, Path | None]]:
    """The (label, directory) pairs searched for ``name``, in order; None = not set."""
    if name == "mnist-sample":
        if data_dir is not None:  # an explicit directory must not be silently ignored
            raise UsageError(
                f"--data-dir {data_dir} has no effect with mnist-sample (it is bundled)",
                hint="drop --data-dir, or name the data set that directory holds",
            )
        return [("bundled", BUNDLED_DIR)]
    if data_dir is not None:
        return [("--data-dir", Path(data_dir).expanduser())]
    env = os.environ.get("LENET_DATA_DIR")
    places: list[tuple[str, Path | None]] = [
        ("LENET_DATA_DIR", Path(env).expanduser() if env else None),
        ("cache", cache_dir(name)),
    ]
    spec = SPECS.get(name)
    places += [("system", Path(d)) for d in (spec.system_dirs if spec else ())]
    return places


def locate(name: str, data_dir: str | Path | None = None) -> tuple[Located | None, list[str]]:
    """Search for ``name``; return what was found (or None) and a line per place tried."""
    tried: list[str] = []
    for label, directory in search_places(name, data_dir):
        if directory is None:
            tried.append(f"{label}: not set")
            continue
        found = _complete_set(name, directory, label)
        if found is not None:
            return found, tried
        if directory.is_dir():
            state = "the four IDX files not found"
        else:
            state = "not a directory" if directory.exists() else "no such directory"
        tried.append(f"{label} {directory}: {state}")
    return None, tried


def find_source(name: str, data_dir: str | Path | None = None) -> Located | None:
    """The first complete set of files for ``name`` on disk (no download), or None."""
    return locate(name, data_dir)[0]
