"""Loading: real data, normalisation, the decoded cache, search order, fallback, batching."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from conftest import SHARED_MNIST

from lenet_cli.data import (
    SOURCES,
    Dataset,
    batch_rows,
    batches,
    find_source,
    import_source,
    load_dataset,
    split_validation,
    verify,
)
from lenet_cli.data.cache import decoded_dir
from lenet_cli.data.sources import BUNDLED_DIR, cache_dir
from lenet_cli.errors import DataError, DataNotFoundError, UsageError

SHARED = SHARED_MNIST
FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_sources_names():
    assert SOURCES[:4] == ("random", "mnist", "mnist-sample", "fashion-mnist")


def test_bundled_sample_real_digits():
    train = load_dataset("mnist-sample", "train")
    test = load_dataset("mnist-sample", "test")
    assert train.images.shape == (5000, 1, 32, 32) and train.images.dtype == torch.float32
    assert test.images.shape == (10000, 1, 32, 32)
    assert train.labels.dtype == torch.int64 and train.source == "bundled sample"
    assert torch.bincount(train.labels).tolist() == [500] * 10  # 500 per class
    assert train.labels[:500].eq(0).all()  # sorted by class, so the trainer must shuffle
    assert torch.bincount(test.labels).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]  # the real MNIST test set
    # both splits use the TRAIN statistics; the train split is then ~N(0, 1) inside the digit
    assert test.mean == train.mean and test.std == train.std
    assert 0.12 < train.mean < 0.14 and 0.29 < train.std < 0.32
    inner = train.images[:, :, 2:30, 2:30]
    assert abs(inner.mean().item()) < 1e-3 and abs(inner.std().item() - 1) < 1e-3
    # the 2-pixel border is black, normalised like a 0 pixel
    assert torch.allclose(train.images[:, :, :2, :], torch.tensor(-train.mean / train.std))


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared MNIST sample not present")
def test_shared_sample_verifies():
    report = verify("mnist", SHARED)
    assert report["ok"] and report["counts"] == {"train": 5000, "test": 10000}
    assert all(f["canonical_md5"] is False for f in report["files"])  # re-packed bytes


@pytest.mark.skipif(not FASHION.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    ds = load_dataset("fashion-mnist", "test")
    assert ds.images.shape == (10000, 1, 32, 32) and ds.source == str(FASHION)
    assert torch.bincount(ds.labels).tolist() == [1000] * 10
    assert abs(ds.mean - 0.2860) < 1e-3 and abs(ds.std - 0.3530) < 1e-3  # published stats
    assert verify("fashion-mnist")["ok"]


def test_decoded_cache_hit_and_rebuild(idx_set, monkeypatch):
    d = idx_set(n_train=40, n_test=12)
    events = []
    first = load_dataset("mnist", "train", data_dir=d, on_event=events.append)
    assert [e["cached"] for e in events if e["event"] == "decoded"] == [False]
    events.clear()
    second = load_dataset("mnist", "train", data_dir=d, on_event=events.append)
    assert [e["cached"] for e in events if e["event"] == "decoded"] == [True]
    assert torch.equal(first.images, second.images)
    # corrupt the entry: rebuilt, not fatal
    (entry,) = [p for p in decoded_dir().glob("mnist-train-*.pt") if ".stats" not in p.name]
    entry.write_bytes(b"garbage")
    events.clear()
    third = load_dataset("mnist", "train", data_dir=d, on_event=events.append)
    assert [e["cached"] for e in events if e["event"] == "decoded"] == [False]
    assert torch.equal(first.images, third.images)
    # changed source files give a new entry, and the stale one is removed
    idx_set(d, n_train=41, n_test=12, seed=1)
    os.utime(d / "train-images-idx3-ubyte.gz", ns=(1, 1))
    assert len(load_dataset("mnist", "train", data_dir=d)) == 41
    assert len([p for p in decoded_dir().glob("mnist-train-*.pt") if ".stats" not in p.name]) == 1


def test_search_order_env_then_cache(idx_set, monkeypatch):
    env_dir = idx_set(n_train=11)
    monkeypatch.setenv("LENET_DATA_DIR", str(env_dir))
    assert find_source("mnist").where == "LENET_DATA_DIR"
    monkeypatch.delenv("LENET_DATA_DIR")
    assert find_source("mnist") is None
    import_source("mnist", env_dir)
    found = find_source("mnist")
    assert found.where == "cache" and found.directory == cache_dir("mnist")


def test_torchvision_layout_and_raw_files(tmp_path, idx_set):
    idx_set(tmp_path / "MNIST" / "raw", gz=False)
    found = find_source("mnist", tmp_path)
    assert found is not None and found.directory == tmp_path / "MNIST" / "raw"
    assert len(load_dataset("mnist", "test", data_dir=tmp_path)) == 20


def test_not_found_lists_places_and_fixes(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("kmnist", "train")
    e = info.value
    assert e.exit_code == 4 and "LENET_DATA_DIR: not set" in e.message
    assert str(cache_dir("kmnist")) in e.message and "LENET_OFFLINE" in e.message
    for fix in ("lenet data import kmnist DIR", "--data-dir DIR", "--data random"):
        assert fix in e.hint
    with pytest.raises(DataNotFoundError, match="no such directory"):
        load_dataset("mnist", "train", data_dir=tmp_path / "nope", explicit=False)


def test_default_mnist_falls_back_explicit_does_not():
    ds = load_dataset("mnist", "train", explicit=False)
    assert ds.name == "mnist-sample" and ds.source == "bundled sample"
    assert "lenet data download mnist" in ds.notice and "lenet data import mnist" in ds.notice
    with pytest.raises(DataNotFoundError):
        load_dataset("mnist", "train")
    with pytest.raises(DataNotFoundError):
        load_dataset("kmnist", "train", explicit=False)  # only mnist falls back


def test_import_refuses_bad_files_and_copies_nothing(idx_set):
    d = idx_set()
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="not a gzip file"):
        import_source("mnist", d)
    assert not cache_dir("mnist").exists() or not any(cache_dir("mnist").iterdir())


def test_random_source():
    a = load_dataset("random", "train", seed=3)
    b = load_dataset("random", "train", seed=3)
    t = load_dataset("random", "test", seed=3, random_size=10)
    assert a.images.shape == (1024, 1, 32, 32) and len(t) == 10
    assert torch.equal(a.images, b.images) and a.labels.max() <= 9
    assert a.source == "random (seed 3)" and (a.mean, a.std) == (0.0, 1.0)
    with pytest.raises(UsageError):
        load_dataset("nope", "train")
    with pytest.raises(UsageError):
        load_dataset("random", "val")


def _tiny(n=10) -> Dataset:
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 32, 32)
    return Dataset("t", "train", images.contiguous(), torch.arange(n), 0.0, 1.0, "test")


def test_batches_cover_once_last_partial_and_deterministic():
    ds = _tiny(10)
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    got = list(batches(ds.images, ds.labels, 4, generator=g))
    assert [len(y) for _, y in got] == [4, 4, 2]
    seen = torch.cat([y for _, y in got])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    for x, y in got:  # images and labels stay paired
        assert torch.equal(x[:, 0, 0, 0].long(), y)
    g.set_state(state)
    again = torch.cat([y for _, y in batches(ds.images, ds.labels, 4, generator=g)])
    assert torch.equal(seen, again)  # same generator state -> same order (exact resume)
    ordered = torch.cat([y for _, y in batches(ds.images, ds.labels, 3, shuffle=False)])
    assert ordered.tolist() == list(range(10))
    with pytest.raises(UsageError):
        next(batches(ds.images, ds.labels, 0))


def test_batch_rows_are_the_rows_batches_gathers():
    """The CPU training step reads batch_rows' rows where they are: the same permutation as
    batches from the same generator state (fused and autograd runs see the same data order)."""
    ds = _tiny(10)
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    rows = list(batch_rows(10, 4, generator=g))
    g.set_state(state)
    gathered = list(batches(ds.images, ds.labels, 4, generator=g))
    assert [r.tolist() for r in rows] == [y.tolist() for _, y in gathered]
    assert all(r.dtype is torch.int64 for r in rows)
    with pytest.raises(UsageError):
        next(batch_rows(10, 0))


def test_split_validation_seeded():
    ds = _tiny(100)
    tr, va = split_validation(ds, 0.1, seed=1)
    tr2, va2 = split_validation(ds, 0.1, seed=1)
    assert len(tr) == 90 and len(va) == 10 and va.split == "val"
    assert torch.equal(va.labels, va2.labels)
    assert sorted(torch.cat([tr.labels, va.labels]).tolist()) == list(range(100))
    assert split_validation(ds, 0.0, seed=1) == (ds, None)
    for bad in (-0.1, 1.0):
        with pytest.raises(UsageError):
            split_validation(ds, bad, seed=1)


def test_bundled_files_and_licence_ship_in_package():
    names = sorted(p.name for p in BUNDLED_DIR.iterdir())
    assert names == [
        "README.md",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert "CC BY-SA 3.0" in (BUNDLED_DIR / "README.md").read_text()


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_split_of_0_images_is_refused_and_train_writes_nothing(idx_set, tmp_path, split):
    from typer.testing import CliRunner

    from lenet_cli.cli import app

    counts = {"n_train": 0} if split == "train" else {"n_test": 0}
    directory = idx_set(tmp_path / "empty", **counts)
    with pytest.raises(DataError, match=f"{split} split .* 0 images"):
        load_dataset("mnist", split, data_dir=directory)
    out = tmp_path / "runs"
    args = ["train", "--data", "mnist", "--data-dir", str(directory), "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 5, result.output
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert f"{split} split" in line and str(directory) in line, line
    assert not out.exists()
