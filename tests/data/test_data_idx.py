"""IDX reading: round trips, every malformed variant refused with DataError, bounded memory."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from conftest import write_idx
from hypothesis import given, settings
from hypothesis import strategies as st

from lenet_cli.data import read_idx_images, read_idx_labels, read_idx_pair
from lenet_cli.errors import DataError

IMG, LAB = 0x803, 0x801


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("gz", [True, False])
def test_round_trip(tmp_path, gz):
    ext = ".gz" if gz else ""
    images, labels = _images(7), np.arange(7, dtype=np.uint8) % 10
    write_idx(tmp_path / f"i{ext}", images, IMG)
    write_idx(tmp_path / f"l{ext}", labels, LAB)
    x, y = read_idx_pair(tmp_path / f"i{ext}", tmp_path / f"l{ext}")
    assert x.dtype.is_floating_point is False and x.shape == (7, 28, 28)
    assert np.array_equal(x.numpy(), images) and np.array_equal(y.numpy(), labels)


def test_empty_files_are_valid(tmp_path):
    write_idx(tmp_path / "i.gz", np.zeros((0, 28, 28)), IMG)
    assert read_idx_images(tmp_path / "i.gz").shape == (0, 28, 28)


def _raw(magic, dims, payload: bytes) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload


def _write(path, data: bytes, gz: bool):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


MALFORMED_IMAGES = {
    "bad magic": (_raw(0x804, (1, 28, 28, 1), b"\0" * 784), "bad magic"),
    "labels as images": (_raw(LAB, (1,), b"\0"), "holds labels"),
    "wrong size": (_raw(IMG, (1, 32, 32), b"\0" * 1024), "expected 28x28"),
    "short payload": (_raw(IMG, (2, 28, 28), b"\0" * 1000), "short"),
    "long payload": (_raw(IMG, (1, 28, 28), b"\0" * 785), "longer"),
    "short header": (b"\0\0\x08\x03\0\0", "ends inside the header"),
    "empty file": (b"", "ends inside the header"),
    "huge header": (_raw(IMG, (2**31, 28, 28), b"\0" * 784), "limit"),
}


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("case", sorted(MALFORMED_IMAGES))
def test_malformed_images_refused(tmp_path, case, gz):
    data, words = MALFORMED_IMAGES[case]
    path = _write(tmp_path / ("x.gz" if gz else "x"), data, gz)
    with pytest.raises(DataError) as info:
        read_idx_images(path)
    assert words in info.value.message and str(path) in info.value.message
    assert info.value.exit_code == 5


@pytest.mark.parametrize("gz", [True, False])
def test_label_out_of_range(tmp_path, gz):
    path = _write(tmp_path / ("l.gz" if gz else "l"), _raw(LAB, (3,), bytes([1, 10, 2])), gz)
    with pytest.raises(DataError, match="label 10 at index 1"):
        read_idx_labels(path)


def test_count_mismatch(tmp_path):
    write_idx(tmp_path / "i.gz", _images(3), IMG)
    write_idx(tmp_path / "l.gz", np.zeros(4), LAB)
    with pytest.raises(DataError, match="4 labels but i.gz has 3 images"):
        read_idx_pair(tmp_path / "i.gz", tmp_path / "l.gz")


def test_truncated_gzip(tmp_path):
    blob = gzip.compress(_raw(IMG, (50, 28, 28), _images(50).tobytes()))
    (tmp_path / "t.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="truncated|short"):
        read_idx_images(tmp_path / "t.gz")


def test_gzip_missing_trailer(tmp_path):
    blob = gzip.compress(_raw(IMG, (5, 28, 28), _images(5).tobytes()))
    (tmp_path / "t.gz").write_bytes(blob[:-4])
    with pytest.raises(DataError, match="truncated"):
        read_idx_images(tmp_path / "t.gz")


def test_not_gzip(tmp_path):
    (tmp_path / "n.gz").write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DataError, match="not a gzip file"):
        read_idx_images(tmp_path / "n.gz")


def test_corrupt_gzip_body(tmp_path):
    blob = bytearray(gzip.compress(_raw(IMG, (20, 28, 28), _images(20).tobytes())))
    blob[40:60] = b"\xff" * 20
    (tmp_path / "c.gz").write_bytes(bytes(blob))
    with pytest.raises(DataError):
        read_idx_images(tmp_path / "c.gz")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_idx_images(tmp_path / "nope.gz")


def _bomb(path, promised: int, actual: int) -> None:
    """A header promising ``promised`` images followed by ``actual`` bytes of zeros."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    parts = [comp.compress(_raw(IMG, (promised, 28, 28), b""))]
    block = b"\0" * (1 << 20)
    for _ in range(actual >> 20):
        parts.append(comp.compress(block))
    parts.append(comp.flush())
    path.write_bytes(b"".join(parts))


def test_gzip_bomb_bounded_memory(tmp_path):
    _bomb(tmp_path / "bomb.gz", promised=10, actual=512 << 20)  # 512 MiB of zeros, ~0.5 MB file
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="longer than the header promises"):
            read_idx_images(tmp_path / "bomb.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak:,} bytes"


def test_huge_claim_small_body_bounded_memory(tmp_path):
    # 300,000 images (235 MB) is under the size limit: memory must follow the real data.
    _bomb(tmp_path / "liar.gz", promised=300_000, actual=1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="short"):
            read_idx_images(tmp_path / "liar.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"peak {peak:,} bytes"


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 12),
    gz=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_property(tmp_path_factory, n, gz, seed):
    d = tmp_path_factory.mktemp("prop")
    images = _images(n, seed)
    labels = np.random.default_rng(seed).integers(0, 10, n, dtype=np.uint8)
    ext = ".gz" if gz else ""
    write_idx(d / f"i{ext}", images, IMG)
    write_idx(d / f"l{ext}", labels, LAB)
    x, y = read_idx_pair(d / f"i{ext}", d / f"l{ext}")
    assert np.array_equal(x.numpy(), images) and np.array_equal(y.numpy(), labels)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=2000), gz=st.booleans(), labels=st.booleans())
def test_arbitrary_bytes_parse_or_data_error(tmp_path_factory, data, gz, labels):
    """Any bytes at all: a tensor or a DataError, never another exception."""
    path = tmp_path_factory.mktemp("fuzz") / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(data) if gz else data)
    reader = read_idx_labels if labels else read_idx_images
    try:
        out = reader(path)
    except DataError:
        return
    assert out.dtype.itemsize == 1


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, 3000), flip=st.integers(0, 3000))
def test_damaged_valid_file_parse_or_data_error(tmp_path_factory, cut, flip):
    blob = bytearray(gzip.compress(_raw(IMG, (3, 28, 28), _images(3).tobytes())))
    if flip < len(blob):
        blob[flip] ^= 0x55
    path = tmp_path_factory.mktemp("dmg") / "d.gz"
    path.write_bytes(bytes(blob[: max(cut, 0)]))
    try:
        read_idx_images(path)
    except DataError:
        pass
