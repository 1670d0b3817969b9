"""`lenet sweep`: search spaces, a 2-worker SQLite sweep, resume after Ctrl-C, pruning, and two
sweeps (as on two machines) sharing one study in a real PostgreSQL server.

The PostgreSQL test makes a throwaway cluster in a temporary directory (initdb), starts it on a
free loopback port (pg_ctl) and stops it at the end; as root the server runs as the `postgres`
user. .ci/run installs Debian's postgresql, so it runs in CI; elsewhere it skips without initdb.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.config import load_toml
from lenet_cli.errors import ConfigError
from lenet_cli.scale.space import load_space

REPO = REPO
SPACE = """
[sweep]
metric = "test_acc"
[space]
lr = { type = "float", low = 1e-3, high = 1e-2, log = true }
batch_size = { type = "categorical", choices = [32, 64] }
"""
# tiny trials: random data (1,024 training images), PyTorch ops (no kernel to compile)
FIXED = ["--data", "random", "--device", "cpu", "--arch", "tutorial", "--no-fused"]


def sweep(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "lenet_cli", "sweep", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[space]\nlrr = { type = "float", low = 0.1, high = 1.0 }', "unknown key 'lrr'"),
        ('[space]\nlr = { type = "float", low = 0.1, high = 0.01 }', "empty range"),
        ('[space]\nepochs = { type = "float", low = 1.0, high = 3.0 }', "int option"),
        ('[space]\narch = { type = "int", low = 1, high = 3 }', "not a number"),
        ('[space]\nbatch_size = { type = "categorical", choices = [32, "x"] }', "must be int"),
        ('[space]\noptimizer = { type = "categorical", choices = ["sgd", "lion"] }', "lion"),
        ('[space]\nweight_decay = {type = "float", low = 0.0, high = 0.1, log = true}', "low > 0"),
        ('[space]\nlr = { type = "float", low = -1.0, high = 0.1 }', "must be positive"),
        ('[space]\nout = { type = "categorical", choices = ["a"] }', "cannot be searched"),
        ("[space]\n", "no [space] table"),
        ('[sweep]\nmetric = "x"\n[space]\nlr = {type = "float", low = 0.1, high = 1}', "metric"),
        ('[space]\nepochs = { type = "int", low = 1 }', "space.epochs: .*low and high"),
        ('[space]\nlr = { type = "float", high = 0.1 }', "space.lr: .*low and high"),
        ('[space]\nepochs = { type = "int", low = 1, high = 9223372036854775807, log = true }',
         r"space.epochs.high: epochs = 9223372036854775807 must be in \[1, 1000000\]"),
        ('[space]\nmax_steps = { type = "int", low = 1, high = 9223372036854775807 }',
         "space.max_steps.high"),
        ('[space]\nbatch_size = { type = "int", low = 0, high = 64 }', "space.batch_size.low"),
    ],
)  # fmt: skip
def test_bad_search_space_is_one_line_exit_7(tmp_path, text, expected):
    path = tmp_path / "space.toml"
    path.write_text(text)
    pattern = expected if "\\[" in expected or ".*" in expected else expected.replace("[", r"\[")
    with pytest.raises(ConfigError, match=pattern):
        load_space(path)
    args = ["sweep", "--space", str(path), "--out", str(tmp_path / "sw"), *FIXED]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 7, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and str(path) in lines[0]
    assert not (tmp_path / "sw").exists()  # nothing created for a bad space


def test_example_space_is_valid():
    space = load_space(REPO / "configs" / "mnist-sweep.toml")
    assert {p.name for p in space.params} >= {"lr", "batch_size"}


def test_missing_optuna_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "s.toml").write_text(SPACE)
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    args = ["sweep", "--space", str(tmp_path / "s.toml"), "--out", str(tmp_path), *FIXED]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 14
    assert "pip install 'lenet-cli[sweep]'" in result.stderr


@pytest.mark.slow
@pytest.mark.extra("sweep")
def test_four_trials_two_workers_sqlite(tmp_path):
    (tmp_path / "s.toml").write_text(SPACE)
    args = ["--space", "s.toml", "--trials", "4", "--workers", "2", "--study", "s", *FIXED]
    result = sweep(*args, "--epochs", "2", "--max-steps", "12", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [t["state"] for t in doc["trials"]] == ["complete"] * 4
    assert "2 worker(s) x 1 thread(s)" in result.stderr
    for t in doc["trials"]:  # each trial is a normal run directory of `lenet train`
        run = tmp_path / "sweeps" / "s" / t["dir"]
        assert {"config.toml", "metrics.jsonl", "last.pt", "best.pt"} <= {
            p.name for p in run.iterdir()
        }
        assert load_toml(run / "config.toml")["lr"] == pytest.approx(t["params"]["lr"])
    best = doc["best"]
    assert best["value"] == max(t["value"] for t in doc["trials"])
    values = load_toml(tmp_path / "sweeps" / "s" / "best.toml")  # usable as --config as it is
    assert values["lr"] == pytest.approx(best["params"]["lr"]) and values["out"] == "runs"
    shown = sweep("--show", "--study", "s", "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["best"]["number"] == best["number"]
    again = sweep("--study", "s", "--space", "s.toml", cwd=tmp_path)
    assert again.returncode == 2 and "keeps its search space" in again.stderr


@pytest.mark.slow
@pytest.mark.extra("sweep")
def test_interrupted_sweep_resumes_its_trial(tmp_path):
    (tmp_path / "s.toml").write_text(SPACE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # epochs enough that the trial is still training when the signal lands (an epoch of the
    # tiny data takes milliseconds, and a Ctrl-C inside an import is delivered once it ends)
    args = ["--space", "s.toml", "--trials", "2", "--study", "s", *FIXED, "--epochs", "60"]
    cmd = [sys.executable, "-m", "lenet_cli", "sweep", *args, "--batch-size", "8"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "sweeps" / "s" / "trial-000" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "--study s" in stderr
    done = metrics.read_text().count("\n")
    result = sweep("--study", "s", "--trials", "1", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 interrupted trial(s) queued again" in result.stderr
    trials = json.loads(result.stdout)["trials"]
    assert [t["state"] for t in trials] == ["fail", "complete"]
    assert trials[1]["dir"] == "trial-000" and trials[1]["params"] == trials[0]["params"]
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 61))  # continued, not restarted
    assert len(rows) > done and trials[1]["epochs"] == 60


@pytest.mark.extra("sweep")
def test_pruned_trial_stops_cleanly(tmp_path):
    import optuna
    import torch

    from lenet_cli.config import TrainConfig
    from lenet_cli.scale import sweep as engine
    from lenet_cli.scale.space import from_dict

    space = from_dict({"space": {"lr": {"type": "float", "low": 1e-3, "high": 2e-3}}}, "t")
    fixed = TrainConfig(data="random", device="cpu", epochs=5, max_steps=None, batch_size=256)
    settings = {
        "config": fixed.to_dict(),
        "data_explicit": True,
        "space": space.to_dict(),
        "metric": "test_acc",
        "trials": 1,
        "out": "runs",
    }
    pruner = optuna.pruners.ThresholdPruner(lower=1.0)  # every epoch is below: prune at once
    study = optuna.create_study(direction="maximize", pruner=pruner)
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned):
        engine.run_trial(trial, settings, tmp_path, torch.device("cpu"), 1)
    rows = (tmp_path / "trial-000" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1  # stopped after epoch 1 of 5, its checkpoint written
    assert (tmp_path / "trial-000" / "last.pt").is_file()


def _bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Postgres:
    """A throwaway PostgreSQL cluster: ``url``, and ``stop()`` / ``start()`` of its server."""

    def __init__(self, initdb: str, pg_ctl: str, as_user: list[str], base: Path) -> None:
        self.pg_ctl, self.as_user, self.base = pg_ctl, as_user, base
        self.data, port = base / "data", _free_port()
        self.options = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off"
        self.url = f"postgresql://lenet@127.0.0.1:{port}/postgres"
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "lenet", "--no-sync")

    def _run(self, *cmd: str, check: bool = True) -> None:
        subprocess.run([*self.as_user, *cmd], check=check, capture_output=True, timeout=120)

    def start(self) -> None:
        log = str(self.base / "log")
        self._run(self.pg_ctl, "-D", str(self.data), "-o", self.options, "-l", log, "-w", "start")

    def stop(self, check: bool = True) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop", check=check)


@pytest.fixture
def postgres():
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="lenet-pg-"))
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            user = pwd.getpwnam("postgres")  # made by Debian's postgresql package
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        os.chown(base, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = _Postgres(initdb, pg_ctl, as_user, base)
    try:
        server.start()
        yield server
    finally:
        server.stop(check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres):
    return postgres.url


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.extra("sweep")
def test_two_workers_and_a_second_machine_share_one_postgres_study(tmp_path, postgres_url):
    (tmp_path / "s.toml").write_text(SPACE)
    common = ["--storage", postgres_url, "--study", "pg", "--json"]
    args = ["--space", "s.toml", "--trials", "4", "--workers", "2", *FIXED, "--max-steps", "8"]
    first = sweep(*common, *args, "--out", "a", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # every trial ran to its end; the median pruner may stop one after its first epoch report
    finished = {"complete", "pruned"}
    states = [t["state"] for t in json.loads(first.stdout)["trials"]]
    assert len(states) == 4 and set(states) <= finished and "complete" in states
    # "another machine": its own directory, the same study; it runs the 2 trials added
    second = sweep(*common, "--trials", "6", "--out", "b", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    doc = json.loads(second.stdout)
    states = [t["state"] for t in doc["trials"]]
    assert len(states) == 6 and set(states) <= finished
    dirs_a = {p.name for p in (tmp_path / "a" / "pg").glob("trial-*")}
    dirs_b = {p.name for p in (tmp_path / "b" / "pg").glob("trial-*")}
    assert len(dirs_a) == 4 and len(dirs_b) == 2 and not dirs_a & dirs_b
    assert dirs_a | dirs_b == {t["dir"] for t in doc["trials"]}
    assert (
        doc["best"]["number"]
        == json.loads(sweep(*common, "--show", cwd=tmp_path).stdout)["best"]["number"]
    )


def test_cli_import_leaves_optuna_and_torch_unimported():
    code = "import sys, lenet_cli.cli; sys.exit(3 if {'optuna', 'torch'} & set(sys.modules) else 0)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0


@pytest.mark.extra("sweep")
def test_an_unreachable_storage_is_exit_16_naming_it(tmp_path):
    (tmp_path / "s.toml").write_text(SPACE)
    url = f"postgresql://lenet:secret@127.0.0.1:{_free_port()}/postgres"  # nothing listens
    result = sweep("--storage", url, "--study", "u", "--space", "s.toml", *FIXED, cwd=tmp_path)
    assert result.returncode == 16, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert url.replace(":secret@", ":***@") in line and "secret" not in line, line
    assert "connect" in line.lower() and "--study u" in line and "resumes" in line, line
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.extra("sweep")
@pytest.mark.parametrize("url", ["bogus://x", "sqlite:///{tmp}/no/such/dir/study.db"])
def test_a_storage_url_that_cannot_work_is_exit_2(tmp_path, url):
    (tmp_path / "s.toml").write_text(SPACE)
    args = ["sweep", "--storage", url.format(tmp=tmp_path), "--study", "b", "--space"]
    result = CliRunner().invoke(app, [*args, str(tmp_path / "s.toml"), *FIXED])
    assert result.exit_code == 2, result.output
    assert "--storage" in result.stderr and "internal error" not in result.stderr


def test_show_of_a_missing_study_creates_nothing(tmp_path):
    (tmp_path / "sweeps").mkdir()
    result = CliRunner().invoke(app, ["sweep", "--show", "--study", "n", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "'n'" in line and "--storage" not in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweeps"]  # no n/, no study.db
    nested = ["sweep", "--show", "--study", "n", "--out", str(tmp_path / "sweeps")]
    assert CliRunner().invoke(app, nested).exit_code == 2
    assert list((tmp_path / "sweeps").iterdir()) == []


@pytest.mark.extra("sweep")
def test_a_trial_is_not_pruned_after_its_final_epoch(tmp_path):
    import optuna
    import torch

    from lenet_cli.config import TrainConfig
    from lenet_cli.scale import sweep as engine
    from lenet_cli.scale.space import from_dict

    space = from_dict({"space": {"lr": {"type": "float", "low": 1e-3, "high": 2e-3}}}, "t")
    fixed = TrainConfig(data="random", device="cpu", epochs=2, max_steps=None, batch_size=256)
    settings = {
        "config": fixed.to_dict(),
        "data_explicit": True,
        "space": space.to_dict(),
        "metric": "test_acc",
        "trials": 1,
        "out": "runs",
    }
    pruner = optuna.pruners.ThresholdPruner(lower=1.0, n_warmup_steps=2)  # prunes from epoch 2
    study = optuna.create_study(direction="maximize", pruner=pruner)
    value = engine.run_trial(study.ask(), settings, tmp_path, torch.device("cpu"), 1)
    rows = (tmp_path / "trial-000" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2 and value == max(json.loads(r)["test_acc"] for r in rows)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.extra("sweep")
def test_a_storage_lost_mid_sweep_is_exit_16_and_a_rerun_resumes(tmp_path, postgres):
    (tmp_path / "s.toml").write_text(SPACE)
    common = ["--storage", postgres.url, "--study", "lost"]
    args = [*common, "--space", "s.toml", "--trials", "2", *FIXED, "--epochs", "12"]
    cmd = [sys.executable, "-m", "lenet_cli", "sweep", *args, "--batch-size", "256"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "sweeps" / "lost" / "trial-000" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    postgres.stop()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 16, stderr
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert postgres.url in line and "--study lost" in line and "resumes" in line, line
    assert "internal error" not in stderr and "max length" not in stderr
    postgres.start()
    again = sweep(*common, "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "1 interrupted trial(s) queued again" in again.stderr
    trials = json.loads(again.stdout)["trials"]
    done = [t for t in trials if t["state"] == "complete"]
    assert len(done) == 2 and done[0]["dir"] == "trial-000"  # continued in its own directory
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 13))  # continued, not restarted
