"""lenet_cli.train: options as keywords, callbacks, the process left as found, Ctrl-C."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO

import lenet_cli as lenet
from lenet_cli.config import TrainConfig
from lenet_cli.errors import ConfigError, LenetError, OutputExistsError, UsageError
from lenet_cli.runs.checkpoint import load_checkpoint

QUICK = dict(data="random", epochs=2, batch_size=128, device="cpu", threads=1, progress="none")


class Recorder:
    """Every hook, with what the run offered when it was called."""

    def __init__(self, stop_epoch=None, stop_step=None):
        self.calls, self.stop_epoch, self.stop_step = [], stop_epoch, stop_step

    def on_train_start(self, run):
        self.calls.append(("start", run.epoch, run.step))
        self.start = dict(
            config=run.config, run_dir=run.run_dir, model=run.model, optimizer=run.optimizer
        )

    def on_step_end(self, run, step, loss):
        assert step == run.step and isinstance(loss, float)
        self.calls.append(("step", step))
        return "stop" if step == self.stop_step else None

    def on_epoch_end(self, run, row):
        self.calls.append(("epoch", row["epoch"], row["partial"], run.epoch))
        self.rows = [*getattr(self, "rows", []), row]
        return "stop" if row["epoch"] == self.stop_epoch else None

    def on_train_end(self, run, summary):
        self.calls.append(("end", summary["stopped"]))


def test_a_callback_stops_after_epoch_2_and_the_result_holds_the_run(tmp_path):
    rec = Recorder(stop_epoch=2)
    res = lenet.train(**{**QUICK, "epochs": 5}, out=tmp_path, name="nb", callbacks=[rec])
    assert res.run_dir == tmp_path / "nb"
    assert res.summary["stopped"] == "callback"
    assert res.summary["stopped_by"] == "Recorder.on_epoch_end at step 16"
    assert [r["epoch"] for r in res.metrics] == [1, 2]  # metrics.jsonl, as written
    assert rec.rows == res.metrics  # on_epoch_end saw the rows as metrics.jsonl holds them
    assert all(0 <= r["test_acc"] <= 1 for r in res.metrics)  # fractions
    assert load_checkpoint(res.run_dir / "last.pt")["epoch"] == 2
    env = json.loads((res.run_dir / "env.json").read_text())
    assert env["ended"]["status"] == "finished"
    # the hooks in order; run.epoch counts the epochs finished
    steps = [c for c in rec.calls if c[0] == "step"]
    assert rec.calls[0] == ("start", 0, 0) and len(steps) == 16
    assert [c for c in rec.calls if c[0] == "epoch"] == [
        ("epoch", 1, False, 1),
        ("epoch", 2, False, 2),
    ]
    assert rec.calls[-1] == ("end", "callback")
    assert rec.start["config"]["epochs"] == 5 and rec.start["run_dir"] == res.run_dir
    assert rec.start["model"] is res.model and isinstance(
        rec.start["optimizer"], torch.optim.Optimizer
    )
    # the plain network, in eval mode, carrying its normalisation
    assert type(res.model).__name__ == "Net" and not res.model.training
    assert set(res.model.lenet_meta) >= {"mean", "std", "data", "loss"}
    assert res.config["epochs"] == 5 and res.config["data"] == "random"


def test_on_step_end_stops_mid_epoch_as_max_steps_does_and_resume_continues(tmp_path):
    rec = Recorder(stop_step=5)
    res = lenet.train(**QUICK, out=tmp_path, name="s", callbacks=[rec])
    assert res.summary["stopped"] == "callback" and res.summary["steps"] == 5
    assert res.metrics[-1]["partial"] is True and res.metrics[-1]["step"] == 5
    assert load_checkpoint(res.run_dir / "last.pt")["step"] == 5
    more = lenet.train(resume=res.run_dir, progress="none", threads=1)
    assert more.summary["stopped"] == "epochs" and more.summary["steps"] == 16
    assert [r["step"] for r in more.metrics] == [5, 8, 16]


def test_callbacks_are_checked_before_anything_is_written(tmp_path):
    with pytest.raises(UsageError, match=r"callbacks\[0\] \(object\) has none of the methods"):
        lenet.train(**QUICK, out=tmp_path, name="x", callbacks=[object()])

    class Bad:
        def on_epoch_end(self, run, row):
            return "Stop"

    with pytest.raises(UsageError, match=r"Bad.on_epoch_end returned 'Stop'"):
        lenet.train(**QUICK, out=tmp_path, name="y", callbacks=Bad())  # one, not in a list
    assert not (tmp_path / "x").exists()


def test_options_are_checked_as_the_flags_are(tmp_path):
    with pytest.raises(UsageError, match="did you mean 'batch_size'"):
        lenet.train(**QUICK, batchsize=64, out=tmp_path)
    with pytest.raises(UsageError, match="--lr must be positive"):
        lenet.train(**QUICK, lr=-1.0, out=tmp_path)
    with pytest.raises(UsageError, match="epochs must be int"):
        lenet.train(**{**QUICK, "epochs": "two"}, out=tmp_path)
    with pytest.raises(UsageError, match="--nproc N"):
        lenet.train(**QUICK, nproc=2, out=tmp_path)
    lenet.train(**QUICK, out=tmp_path, name="n")
    with pytest.raises(OutputExistsError):  # exit 10, as the CLI
        lenet.train(**QUICK, out=tmp_path, name="n")
    assert list(tmp_path.iterdir()) == [tmp_path / "n"]
    assert all(isinstance(e, LenetError) for e in (UsageError("x"), OutputExistsError("x")))


def test_every_config_field_is_a_keyword_of_train():
    import inspect

    params = inspect.signature(lenet.train).parameters
    for f in dataclasses.fields(TrainConfig):
        assert f.name in params, f.name
        assert f.name == "data" or params[f.name].default is None
        assert f.name in (lenet.train.__doc__ or ""), f.name


def test_config_file_then_keywords(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('data = "random"\nepochs = 3\nbatch_size = 512\nlr = 0.01\n')
    res = lenet.train(cfg, epochs=1, out=tmp_path, name="c", threads=1, progress="none")
    assert res.config["epochs"] == 1 and res.config["batch_size"] == 512
    assert res.config["lr"] == 0.01
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = 0\n")
    with pytest.raises(ConfigError):  # a file's value: exit 7, as `lenet train --config`
        lenet.train(bad, out=tmp_path)


def test_train_twice_in_one_process_restores_what_it_changed(tmp_path):
    """Signal handlers, threads, the global RNGs and deterministic mode are as before; the same
    options give the same run twice."""

    def handler(signum, frame):  # a notebook's own handler
        pass

    old = signal.signal(signal.SIGINT, handler)
    try:
        torch.set_num_threads(2)
        torch.manual_seed(123)
        random.seed(123)
        np.random.seed(123)
        before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
        runs = []
        for name in ("a", "b"):
            runs.append(lenet.train(**QUICK, out=tmp_path, name=name, deterministic=True, seed=7))
            assert signal.getsignal(signal.SIGINT) is handler
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
            assert torch.get_num_threads() == 2
            assert not torch.are_deterministic_algorithms_enabled()
            assert torch.equal(torch.get_rng_state(), before[0])
            assert random.getstate() == before[1]
            assert np.array_equal(np.random.get_state()[1], before[2])
        a, b = (r.metrics for r in runs)
        strip = ("images_per_s", "seconds", "time")
        assert [{k: v for k, v in r.items() if k not in strip} for r in a] == [
            {k: v for k, v in r.items() if k not in strip} for r in b
        ]
    finally:
        signal.signal(signal.SIGINT, old)


def test_ctrl_c_saves_last_pt_and_raises_keyboard_interrupt(tmp_path):
    class CtrlC:
        def on_step_end(self, run, step, loss):
            if step == 3:
                os.kill(os.getpid(), signal.SIGINT)  # as a notebook's interrupt does

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match=r"interrupted by SIGINT .* saved .*last.pt"):
        lenet.train(
            **{**QUICK, "epochs": 50}, scheduler="none", out=tmp_path, name="k", callbacks=[CtrlC()]
        )
    assert signal.getsignal(signal.SIGINT) is before
    assert load_checkpoint(tmp_path / "k" / "last.pt")["step"] == 3
    env = json.loads((tmp_path / "k" / "env.json").read_text())
    assert env["ended"]["status"] == "interrupted"
    res = lenet.train(resume=tmp_path / "k", epochs=1, progress="none", threads=1)
    assert res.summary["steps"] == 8


def test_in_a_notebook_progress_is_plain_lines_on_stderr(tmp_path):
    """No terminal: one line per epoch on stderr, nothing on stdout; progress="none": none."""
    code = (
        "import lenet_cli as lenet\n"
        f"lenet.train(data='random', epochs=2, threads=1, out={str(tmp_path)!r}, name='p')\n"
        f"lenet.train(data='random', epochs=1, threads=1, out={str(tmp_path)!r}, name='q',"
        " progress='none')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    epochs = [m.group(1) for m in map(re.compile(r"\s*(?:epoch )?(\d+/\d+) ").match, lines) if m]
    assert epochs == ["1/2", "2/2"], done.stderr
    assert "\x1b" not in done.stderr and sum("run dir" in line for line in lines) == 1
