"""``--threads auto``: the CPU thread count that trains fastest *now*, re-checked as the load moves.

Why: on a machine where another program holds a core, PyTorch's OpenMP threads wait for each other
at every parallel region, and a 2-thread step can be 3-17x slower than a 1-thread one; on idle
cores 2 threads are ~1.5x faster. No fixed choice is right for laptops, CI runners and shared
servers, so the training loop times its own steps: a short probe of each candidate count (the
first step after a switch is not counted: it wakes the thread pool), then the fastest is kept,
judged by its mean time per image (throughput: one step that waited 100x for a core counts as
the time it lost, where a median would hide it). More threads must win by ``margin`` (15%): with
another program on the machine, a count that needs every core has bursts of waiting that a
6-step probe can miss: beside two busy processes, choosing by the median without a margin
trained at 55% of a fixed 1 thread's speed, by the mean with the margin at 89%.
It probes again after ``recheck_s`` seconds (doubling, up to 8x, while the answer stays the same),
and sooner when steps get much slower than they were (another program started; at most once per
``recheck_s``). A probe costs
``(1 + probe_steps)`` steps per candidate, and one counted step for a candidate that is already
more than twice as slow as the best so far (with one core busy, 2 threads can be 100x slower).

Pure Python and no torch: the caller passes the function that sets the thread count and reports
each step's time; the tuner reports its choices through ``on_choice``. The C kernels give the same
numbers at any thread count (tests/fast/test_fused.py), so switching changes speed only.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


def candidates(cores: int) -> list[int]:
    """The counts worth trying on ``cores`` cores: 1, half of them, all of them."""
    return sorted({1, max(1, cores // 2), max(1, cores)})


@dataclass
class Choice:
    """What a probe found: the chosen count, each count's mean time per image, and why it ran."""

    threads: int
    us_per_image: dict[int, float]
    reason: str  # "start", "recheck" (timer) or "slowdown" (steps got slower)


@dataclass
class ThreadTuner:
    cands: list[int]
    set_threads: Callable[[int], object]
    on_choice: Callable[[Choice], None] | None = None
    probe_steps: int = 6
    margin: float = 0.15  # more threads are kept only when this much faster than fewer
    recheck_s: float = 5.0
    slow_factor: float = 1.8  # a step this much slower than the recent median is a slowdown...
    slow_run: int = 4  # ...when this many in a row are (one slow step is a GC pause or a blip)
    clock: Callable[[], float] = time.perf_counter
    current: int = field(init=False, default=0)
    _queue: list[int] = field(init=False, default_factory=list)
    _skip: bool = field(init=False, default=False)
    _samples: dict[int, list[float]] = field(init=False, default_factory=dict)
    _recent: deque = field(init=False, default_factory=lambda: deque(maxlen=32))
    _slow: int = field(init=False, default=0)
    _settled_at: float = field(init=False, default=0.0)
    _reason: str = field(init=False, default="start")
    _interval: float = field(init=False, default=0.0)  # seconds until the next timed re-check
    choices: list[Choice] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.cands = sorted(set(self.cands))
        self._interval = self.recheck_s
        if len(self.cands) == 1:  # nothing to choose between: settle at once, never probe
            self._use(self.cands[0])
            self._settled_at = self.clock()
        else:
            self._probe("start")

    @property
    def probing(self) -> bool:
        return bool(self._queue)

    def record(self, seconds: float, images: int) -> None:
        """One training step took ``seconds`` for ``images`` images; maybe switch for the next."""
        if images <= 0:
            return
        per_image = seconds / images
        if self._queue:
            self._record_probe(per_image)
        elif len(self.cands) > 1:
            self._watch(per_image)

    def _probe(self, reason: str) -> None:
        self._reason = reason
        # the current count last, so that a probe that finds nothing better switches only once
        order = [c for c in self.cands if c != self.current] + [self.current]
        self._queue = [c for c in order if c in self.cands]
        self._samples = {c: [] for c in self.cands}
        self._use(self._queue[0])

    def _record_probe(self, per_image: float) -> None:
        if self._skip:  # the first step after a switch wakes the thread pool: not counted
            self._skip = False
            return
        samples = self._samples[self.current]
        samples.append(per_image)
        done = [statistics.fmean(v) for c, v in self._samples.items() if c not in self._queue]
        clearly_worse = bool(done) and per_image > 2 * min(done)  # stop paying for a bad count
        if len(samples) < self.probe_steps and not clearly_worse:
            return
        self._queue.pop(0)
        if self._queue:
            self._use(self._queue[0])
            return
        means = {c: statistics.fmean(s) for c, s in self._samples.items()}
        fastest = min(means.values())
        best = min(c for c, m in means.items() if m <= (1 + self.margin) * fastest)
        # the same answer again: check less often (up to 8x); a new answer: as often as at first
        same = self.choices and self.choices[-1].threads == best
        self._interval = min(self._interval * 2, 8 * self.recheck_s) if same else self.recheck_s
        self._use(best)
        self._recent.clear()
        self._recent.extend(self._samples[best])  # the baseline a slowdown is measured against
        self._slow = 0
        self._settled_at = self.clock()
        choice = Choice(best, {c: m * 1e6 for c, m in means.items()}, self._reason)
        self.choices.append(choice)
        if self.on_choice is not None:
            self.on_choice(choice)

    def _watch(self, per_image: float) -> None:
        since = self.clock() - self._settled_at
        if len(self._recent) >= 3 and per_image > self.slow_factor * statistics.median(
            self._recent
        ):
            self._slow += 1
            # at most one probe per recheck_s: on a busy machine steps are noisy, and probing a
            # count that is far slower is what costs
            if self._slow >= self.slow_run and since >= self.recheck_s:
                self._probe("slowdown")
                return
        else:
            self._slow = 0
            self._recent.append(per_image)
        if since >= self._interval:
            self._probe("recheck")

    def _use(self, threads: int) -> None:
        if threads != self.current:
            self.set_threads(threads)
            self.current = threads
            self._skip = True
