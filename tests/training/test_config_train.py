"""Training config: precedence, sources, errors naming key and file, and every configs/*.toml."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import REPO
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.config import TrainConfig, flag_name, load_toml, resolve, to_toml, tomllib, validate
from lenet_cli.errors import ConfigError

CONFIGS = sorted(  # train configs; *-sweep.toml are search spaces (tests/test_sweep.py)
    p for p in (REPO / "configs").glob("*.toml") if not p.name.endswith("-sweep.toml")
)


def test_precedence_defaults_file_flags():
    r = resolve(
        TrainConfig(), {"lr": 0.1, "epochs": 3}, {"epochs": 5, "seed": None}, file_name="f.toml"
    )
    assert (r.config.lr, r.config.epochs, r.config.seed) == (0.1, 5, 0)
    assert r.sources["lr"] == "f.toml" and r.sources["epochs"] == "flag"
    assert r.sources["seed"] == "default" and not r.explicit("data")


def test_dashed_keys_and_tables(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[run]\nbatch-size = 32\n[optim]\nlr = 1\n")
    assert load_toml(path) == {"batch_size": 32, "lr": 1.0}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("batchsize = 8\n", ["batchsize", "did you mean", "batch_size"]),
        ('epochs = "ten"\n', ["epochs", "int"]),
        ("deterministic = 1\n", ["deterministic", "bool"]),
        ('optimizer = "lbfgs"\n', ["optimizer", "lbfgs"]),
        ("lr = -1.0\n", ["lr", "positive"]),
        ("epochs = [\n", ["not valid TOML"]),
    ],
)
def test_bad_config_names_key_and_file(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_toml(path)
    assert str(path) in str(e.value)
    for word in words:
        assert word in str(e.value)


def test_cli_bad_config_exit_7(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("epoch = 3\n")
    result = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 7
    assert "epoch" in result.stderr and "bad.toml" in result.stderr


def test_toml_round_trip():
    cfg = TrainConfig(data="random", lr=1e-5, name="x", max_steps=7)
    doc = tomllib.loads(to_toml(cfg, "header\nline 2", skip=("name",)))
    assert "name" not in doc
    assert TrainConfig(**{**validate(doc, "t"), "name": "x"}) == cfg


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    values = load_toml(path)
    assert values, path
    resolve(TrainConfig(), values, {})


def test_shipped_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {
        "tutorial.toml",
        "mnist.toml",
        "mnist-mse.toml",
        "fashion-mnist.toml",
        "quick.toml",
    } <= names


def test_tutorial_config_is_the_tutorial():
    cfg = resolve(TrainConfig(), load_toml(CONFIGS[0].parent / "tutorial.toml"), {}).config
    assert (cfg.data, cfg.loss, cfg.optimizer, cfg.lr, cfg.arch) == (
        "random",
        "mse",
        "manual-sgd",
        0.01,
        "tutorial",
    )


def test_print_config_shows_sources(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("lr = 0.5\n")
    result = CliRunner().invoke(
        app, ["train", "--config", str(path), "--epochs", "4", "--print-config"]
    )
    assert result.exit_code == 0, result.output
    lines = {line.split(" = ")[0]: line for line in result.stdout.splitlines()}
    assert lines["lr"].endswith(f"# {path}") and "0.5" in lines["lr"]
    assert lines["epochs"].endswith("# flag") and lines["seed"].endswith("# default")


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--lr", "-1"], "--lr"),
        (["--lr", "inf"], "--lr"),
        (["--lr", "1e308"], "--lr"),  # beyond float32: torch's kernels would overflow
        (["--batch-size", "0"], "--batch-size"),
        (["--val-split", "1.5"], "--val-split"),
        (["--threads", "0"], "--threads"),
        (["--name", "a/b"], "--name"),
        (["--name", "../escape"], "--name"),
        (["--name", ".."], "--name"),
        (["--name", ""], "--name"),
    ],
)
def test_bad_flag_value_is_a_usage_error_naming_the_flag(tmp_path, args, flag):
    result = CliRunner().invoke(
        app, ["train", "--data", "random", "--out", str(tmp_path / "runs"), *args]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escape").exists()


@pytest.mark.parametrize(
    ("text", "words"),
    [("lr = inf\n", ["lr", "finite"]), ('name = "../x"\n', ["name", "plain directory name"])],
)
def test_non_finite_number_or_path_as_name_in_config_exit_7(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 7
    for word in words:
        assert word in result.stderr


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('mlflow = ""\n', ["mlflow = ''", "tracking URI"]),
        ('mlflow = "mysql://host/db"\n', ["mlflow", "tracking URI"]),
        ('out = ""\n', ["out = ''", "not empty"]),
        ('data_dir = ""\n', ["data_dir = ''", "not empty"]),
        ('init = ""\n', ["init = ''", "not empty"]),
    ],
)
def test_empty_path_or_bad_uri_in_config_is_one_line_exit_7(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text + f'name = "r"\nout = "{tmp_path}"\n' * ("out =" not in text))
    result = CliRunner().invoke(app, ["train", "--config", str(path), "--data", "random"])
    assert result.exit_code == 7, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flag", ["--out", "--data-dir", "--init", "--mlflow"])
def test_empty_path_flag_is_a_usage_error(tmp_path, flag):
    result = CliRunner().invoke(app, ["train", "--data", "random", "--print-config", flag, ""])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and result.stdout == ""


def test_every_config_key_is_a_flag_with_its_help_and_default():
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    for f in dataclasses.fields(TrainConfig):
        assert flag_name(f.name) in result.stdout, f.name
        assert f.metadata["help"].split(".")[0][:40] in result.stdout, f.name
        if f.default is not None:
            assert f"Default: {f.default}." in result.stdout, f.name


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--seed", str(2**64)], ["--seed", "must be in [0, 9223372036854775807]"]),
        (["--seed", "-1"], ["--seed", "must be in"]),
        (["--name", "x" * 300], ["--name", "at most 100"]),
        (["--name", "a\nb"], ["--name", "printable"]),
        (["--name", "tab\there"], ["--name", "printable"]),
        (["--out", "runs\nevil"], ["--out", "printable"]),
        (["--data-dir", "d\x1b[31m"], ["--data-dir", "printable"]),
    ],
)
def test_bad_numbers_and_names_are_one_line_exit_2(tmp_path, args, words):
    result = CliRunner().invoke(app, ["train", "--data", "random", "--print-config", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr and result.stdout == ""
    for word in words:
        assert word in lines[0]


def test_a_name_with_a_newline_in_a_config_file_is_exit_7(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('name = "a\\nb"\n')
    result = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 7 and "name" in result.stderr
