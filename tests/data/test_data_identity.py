"""Data identity (the right format is not the right data) and the decoded cache read back as
untrusted input: flipped or out-of-range labels, wrong shapes, foreign files are rebuilt."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.data import load_dataset
from lenet_cli.data.cache import decoded_dir
from lenet_cli.data.identity import MNIST_TRAIN_HISTOGRAM, check_identity, fingerprint
from lenet_cli.data.sources import BUNDLED_DIR, cache_dir
from lenet_cli.errors import DataError
from lenet_cli.files import seal

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not installed")


@needs_fashion
@pytest.mark.parametrize("name", ["mnist", "kmnist"])
def test_import_of_fashion_mnist_under_another_name_is_refused(name):
    result = CliRunner().invoke(app, ["data", "import", name, str(FASHION)])
    assert result.exit_code == 5, result.output
    assert "Fashion-MNIST's training set" in result.stderr and "Traceback" not in result.stderr
    assert not cache_dir(name).exists() or not any(cache_dir(name).iterdir())  # nothing copied


@needs_fashion
def test_fashion_files_placed_in_the_mnist_cache_are_refused_at_load_time():
    cache_dir("mnist").mkdir(parents=True)
    for f in FASHION.glob("*-ubyte.gz"):
        shutil.copy(f, cache_dir("mnist") / f.name)
    with pytest.raises(DataError, match="Fashion-MNIST's test set"):
        load_dataset("mnist", "test")
    result = CliRunner().invoke(app, ["data", "verify", "mnist", "--json"])
    assert result.exit_code == 5 and "Fashion-MNIST" in result.stdout


def test_genuine_mnist_is_accepted_by_import_and_load():
    """The bundled sample is real MNIST (its test set is the full MNIST test set)."""
    result = CliRunner().invoke(app, ["data", "import", "mnist", str(BUNDLED_DIR), "--json"])
    assert result.exit_code == 0, result.output
    ds = load_dataset("mnist", "test")
    assert len(ds) == 10_000 and ds.source == str(cache_dir("mnist"))


def test_a_full_size_set_that_is_not_mnist_is_refused():
    labels = torch.arange(10, dtype=torch.uint8).repeat(6000)  # 6,000 of each: not MNIST
    images = torch.zeros(60_000, 28, 28, dtype=torch.uint8)
    with pytest.raises(DataError, match="balanced set like Fashion-MNIST or KMNIST"):
        check_identity("mnist", "train", fingerprint(images, labels), labels, "DIR")
    # MNIST's published class histogram passes (the only check possible without the files)
    mnist_like = torch.repeat_interleave(
        torch.arange(10, dtype=torch.uint8), torch.tensor(MNIST_TRAIN_HISTOGRAM)
    )
    check_identity("mnist", "train", fingerprint(images, mnist_like), mnist_like, "DIR")
    # a 10,000-image "MNIST test set" that is not it
    test = labels[:10_000]
    with pytest.raises(DataError, match="not the MNIST test set"):
        check_identity("mnist", "test", fingerprint(images[:10_000], test), test, "DIR")


def _entry(split: str = "test") -> Path:
    (entry,) = [
        p for p in decoded_dir().glob(f"mnist-sample-{split}-*.pt") if ".stats" not in p.name
    ]
    return entry


def _reseal(path: Path, change) -> None:
    """Rewrite a cache entry with a valid trailer (as a buggy writer or a hand edit would)."""
    body = path.read_bytes()[: -len(b"\nLENET-SHA256:") - 65]
    entry = torch.load(io.BytesIO(body), weights_only=True)
    change(entry)
    buffer = io.BytesIO()
    torch.save(entry, buffer)
    path.write_bytes(seal(buffer.getvalue()))


def _flip_label(e):
    e["labels"][0] = (int(e["labels"][0]) + 1) % 10


CORRUPTIONS = {
    "flipped byte": None,
    "flipped label, resealed": _flip_label,
    "label 11, resealed": lambda e: e["labels"].__setitem__(5, 11),
    "wrong shape, resealed": lambda e: e.update(images=e["images"].reshape(-1, 14, 56)),
    "labels int64, resealed": lambda e: e.update(labels=e["labels"].long()),
    "std nan, resealed": lambda e: e.update(std=float("nan")),
    "missing images, resealed": lambda e: e.pop("images"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_bad_cache_entry_is_rebuilt_with_a_notice(case):
    first = load_dataset("mnist-sample", "test")
    path = _entry()
    if CORRUPTIONS[case] is None:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x04
        path.write_bytes(bytes(data))
    else:
        _reseal(path, CORRUPTIONS[case])
    events = []
    again = load_dataset("mnist-sample", "test", on_event=events.append)
    notices = [e["notice"] for e in events if e["event"] == "fallback"]
    assert len(notices) == 1 and "rebuilt from the source files" in notices[0]
    assert [e["cached"] for e in events if e["event"] == "decoded"] == [False]
    assert torch.equal(first.labels, again.labels) and torch.equal(first.images, again.images)
    events.clear()
    load_dataset("mnist-sample", "test", on_event=events.append)  # the rebuilt entry is good
    assert [e["cached"] for e in events if e["event"] == "decoded"] == [True]


def test_cache_rebuild_notice_reaches_stderr_at_the_cli(tmp_path):
    load_dataset("mnist-sample", "test")
    _reseal(_entry(), _flip_label)
    result = CliRunner().invoke(
        app, ["data", "show", "mnist-sample", "--split", "test", "--count", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "rebuilt from the source files" in result.stderr
    assert result.stdout.lstrip().startswith("{")


def test_a_directory_in_place_of_a_cache_entry_is_not_fatal():
    load_dataset("mnist-sample", "test")
    path = _entry()
    path.unlink()
    path.mkdir()
    events = []
    ds = load_dataset("mnist-sample", "test", on_event=events.append)
    assert len(ds) == 10_000 and any(e["event"] == "fallback" for e in events)


def test_data_dir_with_the_bundled_sample_is_refused_not_ignored(tmp_path):
    from lenet_cli.errors import UsageError

    with pytest.raises(UsageError, match="no effect with mnist-sample"):
        load_dataset("mnist-sample", "test", data_dir=tmp_path)
    result = CliRunner().invoke(
        app, ["data", "verify", "mnist-sample", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2 and "no effect" in result.stderr
