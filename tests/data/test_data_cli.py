"""`lenet data ...` through Typer's CliRunner: exit codes, JSON on stdout, files written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import SHARED_MNIST
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.data.sources import cache_dir

runner = CliRunner()
SHARED = SHARED_MNIST


def run(*args):
    return runner.invoke(app, list(args))


def test_list_json_shows_bundled_sample():
    r = run("data", "list", "--json")
    assert r.exit_code == 0, r.output
    rows = {s["name"]: s for s in json.loads(r.stdout)["sources"]}
    assert rows["mnist-sample"]["found"] and rows["mnist-sample"]["where"] == "bundled"
    assert rows["mnist-sample"]["counts"] == {"train": 5000, "test": 10000}
    assert not rows["mnist"]["found"]  # a fresh offline machine
    assert run("data", "list").exit_code == 0


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared MNIST sample not present")
def test_verify_shared_sample_passes():
    r = run("data", "verify", "mnist", "--data-dir", str(SHARED), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["counts"] == {"train": 5000, "test": 10000}


def test_verify_missing_exits_4_with_fixes():
    r = run("data", "verify", "kmnist")
    assert r.exit_code == 4
    assert "lenet data import kmnist DIR" in r.stderr and "Traceback" not in r.output


@pytest.mark.parametrize(
    "damage,words",
    [
        (b"not gzip at all", "not a gzip file"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "truncated"),
    ],
)
def test_verify_malformed_exits_5(idx_set, damage, words):
    d = idx_set()
    (d / "train-images-idx3-ubyte.gz").write_bytes(damage)
    r = run("data", "verify", "mnist", "--data-dir", str(d), "--json")
    assert r.exit_code == 5 and "Traceback" not in r.output
    doc = json.loads(r.stdout)
    assert not doc["ok"] and words in doc["problems"][0]
    assert words in r.stderr


def test_import_then_list(idx_set):
    d = idx_set(n_train=33)
    r = run("data", "import", "mnist", str(d), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"]["train"] == 33
    assert (cache_dir("mnist") / "train-images-idx3-ubyte.gz").is_file()
    rows = {s["name"]: s for s in json.loads(run("data", "list", "--json").stdout)["sources"]}
    assert rows["mnist"]["where"] == "cache" and rows["mnist"]["counts"]["train"] == 33


def test_download_offline_exits_4():
    r = run("data", "download", "fashion-mnist")
    assert r.exit_code == 4 and "LENET_OFFLINE" in r.stderr


def test_show_terminal_json_and_png(tmp_path):
    r = run("data", "show", "mnist-sample", "--count", "3")
    assert r.exit_code == 0, r.output
    assert r.stdout.count("label ") == 3
    png = tmp_path / "grid.png"
    r = run(
        "data",
        "show",
        "mnist-sample",
        "--split",
        "test",
        "--count",
        "12",
        "--out",
        str(png),
        "--json",
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert len(doc["labels"]) == 12 and doc["png"] == str(png)
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (10 * 56, 2 * 70)
    r = run("data", "show", "mnist-sample", "--out", str(png))
    assert r.exit_code == 10  # refuses to overwrite
    assert run("data", "show", "mnist-sample", "--out", str(png), "--force").exit_code == 0
    assert run("data", "show", "random", "--count", "2").exit_code == 0


def test_unknown_name_is_usage_error():
    assert run("data", "verify", "cifar").exit_code == 2


def test_data_help_does_not_import_torch():
    code = (
        "import sys\nfrom lenet_cli.cli import app\nfrom typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['data', '--help'])\nassert r.exit_code == 0\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("limit", ["ulimit", "tmpfs"])
def test_show_on_a_full_disk_keeps_the_old_png(tmp_path, limit):
    """--force over an existing PNG when the new one does not fit: exit 11, the old PNG whole."""
    import os

    from conftest import REPO

    where = tmp_path / "disk"
    where.mkdir()
    shell = f"exec {sys.executable} -m lenet_cli data show --count 400 --out grid.png --force"
    if limit == "ulimit":  # files may grow to 20 KB: the new grid (~100 KB) does not fit
        shell = "ulimit -f 20; " + shell
    else:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)])
        if mounted.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        old = run("data", "show", "--count", "8", "--out", str(where / "grid.png"))
        assert old.exit_code == 0, old.output
        before = (where / "grid.png").read_bytes()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            ["sh", "-c", shell], cwd=where, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 11, done.stderr
        assert "grid.png" in done.stderr and "internal error" not in done.stderr
        assert (where / "grid.png").read_bytes() == before
        assert sorted(p.name for p in where.iterdir()) == ["grid.png"]  # no partial file left
    finally:
        if limit == "tmpfs":
            subprocess.run(["umount", str(where)], check=False)
