"""Runs named by the clock: two started in the same second get distinct directories."""

from __future__ import annotations

from datetime import datetime

import lenet_cli.training.plan as plan


class _FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2030, 1, 2, 3, 4, 5)


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "datetime", _FrozenClock)
    flags = {"data": "random", "out": str(tmp_path)}
    first = plan.plan_run(None, flags).run_dir
    assert first.name == "random-tutorial-20300102-030405"
    first.mkdir()  # the first run started; a second one in the same second (a Python loop)
    second = plan.plan_run(None, flags).run_dir
    assert second.name == "random-tutorial-20300102-030405-2" and not second.exists()
    named = plan.plan_run(None, {**flags, "name": "mine"}).run_dir
    assert named == tmp_path / "mine"


def test_python_runs_on_given_arrays_in_the_same_second_get_their_own_directories(
    tmp_path, monkeypatch
):
    import torch

    import lenet_cli as lenet

    monkeypatch.setattr(plan, "datetime", _FrozenClock)
    x, y = torch.rand(40, 28, 28), torch.randint(0, 10, (40,))
    dirs = [
        lenet.train(data=(x, y), epochs=1, progress="none", out=tmp_path, max_steps=1).run_dir
        for _ in range(2)
    ]
    assert [d.name for d in dirs] == [
        "python-tutorial-20300102-030405",
        "python-tutorial-20300102-030405-2",
    ]
