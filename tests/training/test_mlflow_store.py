"""--mlflow sqlite:///FILE whose file cannot be opened: exit 16 at once, in one line (MLflow
itself retries such a store for about 100 s, logging a warning on each try)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lenet_cli.cli import app


@pytest.mark.extra("mlflow")
@pytest.mark.parametrize("kind", ["a folder", "not a database"])
def test_a_sqlite_store_that_cannot_be_opened_is_exit_16_in_one_line(tmp_path, kind):
    store = tmp_path / "m.db"
    if kind == "a folder":
        store.mkdir()
    else:
        store.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    uri = f"sqlite:///{store}"
    args = ["train", "--data", "random", "--epochs", "1", "--out", str(tmp_path / "runs")]
    result = CliRunner().invoke(app, [*args, "--mlflow", uri])
    assert result.exit_code == 16, result.output
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and uri in errors[0], result.stderr
    assert "retried" not in result.stderr and "WARNING" not in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
