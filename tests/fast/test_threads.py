"""`--threads auto`: the tuner picks the faster count and follows the load (simulated times)."""

from __future__ import annotations

from lenet_cli.fast.threads import ThreadTuner, candidates


class Machine:
    """Step times that depend on the thread count and on whether another program is busy."""

    def __init__(self) -> None:
        self.now = 0.0
        self.threads = 0
        self.busy = False
        self.switches: list[int] = []

    def set_threads(self, n: int) -> None:
        self.threads = n
        self.switches.append(n)

    def step_seconds(self, images: int) -> float:
        # quiet: 2 threads 1.6x faster; one core busy: 2 threads 4x slower than 1
        per_image = {1: 30e-6, 2: 19e-6}[self.threads]
        if self.busy and self.threads == 2:
            per_image = 120e-6
        seconds = per_image * images
        self.now += seconds
        return seconds


def run(tuner: ThreadTuner, machine: Machine, steps: int, images: int = 64) -> None:
    for _ in range(steps):
        tuner.record(machine.step_seconds(images), images)


def make(machine: Machine, **kw) -> ThreadTuner:
    return ThreadTuner([1, 2], machine.set_threads, clock=lambda: machine.now, **kw)


def test_candidates():
    assert candidates(1) == [1]
    assert candidates(2) == [1, 2]
    assert candidates(16) == [1, 8, 16]


def test_quiet_machine_settles_on_the_faster_count():
    m = Machine()
    tuner = make(m)
    run(tuner, m, 40)
    assert not tuner.probing
    assert tuner.current == 2 and m.threads == 2
    (choice,) = tuner.choices
    assert choice.reason == "start"
    assert abs(choice.us_per_image[1] - 30) < 1e-6 and abs(choice.us_per_image[2] - 19) < 1e-6


def test_a_busy_core_makes_it_switch_to_one_thread_before_the_timer():
    m = Machine()
    tuner = make(m, recheck_s=0.05)
    run(tuner, m, 40)
    assert tuner.current == 2
    run(tuner, m, 2000)  # the timer backs off to 0.4 s
    n = len(tuner.choices)
    while len(tuner.choices) == n:  # up to the end of a timed re-check: the timer starts again
        run(tuner, m, 1)
    m.busy = True
    before = m.now
    while tuner.choices[-1].threads != 1:
        run(tuner, m, 1)
    assert tuner.current == 1 and tuner.choices[-1].reason == "slowdown"
    assert m.now - before < 0.2  # the timer would have waited 0.4 s


def test_the_timer_finds_that_the_load_went_away():
    m = Machine()
    m.busy = True
    tuner = make(m, recheck_s=0.01)
    run(tuner, m, 30)
    assert tuner.current == 1
    m.busy = False
    run(tuner, m, 400)  # 400 steps * 64 images * 30 us = 0.77 s of simulated time: many rechecks
    assert tuner.current == 2
    assert any(c.reason == "recheck" for c in tuner.choices)


def test_one_slow_step_is_not_a_slowdown():
    m = Machine()
    tuner = make(m, recheck_s=1e9)
    run(tuner, m, 40)
    n = len(tuner.choices)
    tuner.record(1.0, 64)  # a GC pause
    run(tuner, m, 10)
    assert len(tuner.choices) == n and tuner.current == 2


def test_the_first_step_after_a_switch_is_not_counted():
    m = Machine()
    tuner = make(m, probe_steps=2)
    # the first step at 2 threads is very slow (the pool wakes up); counted, it would pick 1
    for threads in (1, 2):
        for i in range(tuner.probe_steps + 1):
            assert m.threads == threads
            seconds = m.step_seconds(64) * (50 if (threads == 2 and i == 0) else 1)
            tuner.record(seconds, 64)
    assert tuner.choices and tuner.current == 2


def test_one_candidate_never_probes():
    m = Machine()
    tuner = ThreadTuner([1], m.set_threads, clock=lambda: m.now)
    run(tuner, m, 20)
    assert m.switches == [1] and tuner.choices == [] and not tuner.probing


def test_empty_steps_are_ignored():
    m = Machine()
    tuner = make(m)
    tuner.record(0.5, 0)
    run(tuner, m, 40)
    assert tuner.current == 2


def test_a_count_that_is_far_slower_is_dropped_after_one_counted_step():
    m = Machine()
    m.busy = True  # 2 threads 4x slower than 1
    tuner = make(m)
    run(tuner, m, 7 + 2)  # 1 skipped + 6 counted at 1 thread, then 1 skipped + 1 counted at 2
    assert not tuner.probing and tuner.current == 1
    assert m.switches == [1, 2, 1]


def test_a_count_must_be_clearly_faster_to_take_more_threads():
    m = Machine()
    tuner = make(m, probe_steps=2)
    for threads, per_image in ((1, 30e-6), (2, 28e-6)):  # 2 threads only 7% faster
        for _ in range(3):
            assert m.threads == threads
            tuner.record(per_image * 64, 64)
    assert tuner.current == 1 and tuner.choices[-1].threads == 1
    assert abs(tuner.choices[-1].us_per_image[2] - 28) < 1e-6


def test_a_probe_that_waited_for_a_core_counts_the_time_it_lost():
    m = Machine()
    tuner = make(m, probe_steps=6)
    # 2 threads: fast in five counted steps of six, the last waited 20x for a core. Its median
    # (19 us per image) beats 1 thread's 30 us; its mean (79 us) is what the probe cost
    times = {1: [30e-6] * 7, 2: [19e-6] * 6 + [380e-6]}  # the first of each is not counted
    for threads in (1, 2):
        for per_image in times[threads]:
            assert m.threads == threads
            tuner.record(per_image * 64, 64)
    assert tuner.current == 1
    assert abs(tuner.choices[-1].us_per_image[2] - (5 * 19 + 380) / 6) < 1e-6


def test_rechecks_that_keep_the_same_answer_come_less_often():
    m = Machine()
    tuner = make(m, recheck_s=0.01)
    run(tuner, m, 2000)
    times = [c for c in tuner.choices if c.reason == "recheck"]
    assert all(c.threads == 2 for c in tuner.choices)
    # 2000 steps of ~1.2 ms: at a fixed 0.01 s there would be ~200 re-checks; backing off to
    # 0.08 s, about 30
    assert 10 < len(times) < 60


def test_train_with_threads_auto_says_what_it_chose(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lenet_cli.cli import app
    from lenet_cli.fast import speed

    monkeypatch.setattr(speed, "default_threads", lambda: 2)  # two candidates on any machine
    args = ["train", "--data", "random", "--device", "cpu", "--epochs", "1", "--batch-size", "16"]
    args += ["--progress", "plain", "--out", str(tmp_path)]
    auto = CliRunner().invoke(app, [*args, "--name", "a"])
    assert auto.exit_code == 0, auto.output
    assert "threads auto: " in auto.output and "us per training image" in auto.output
    fixed = CliRunner().invoke(app, [*args, "--name", "f", "--threads", "1"])
    assert fixed.exit_code == 0, fixed.output
    assert "threads auto" not in fixed.output
    shown = CliRunner().invoke(app, ["train", "--print-config"])
    assert "auto" in next(line for line in shown.output.splitlines() if "threads" in line)
