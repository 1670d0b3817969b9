"""`lenet train --nproc N`: the launcher that starts N ranks of this very command under torchrun.

Standard library only (the ranks import torch, the launcher does not). Each rank writes its exit
code into a temporary directory named by ``RANK_EXIT_DIR_ENV`` (cli._leave_group), because
torchrun exits 1 whatever failed; ``job_exit`` turns those codes into the one a plain run would
have exited with.
"""

from __future__ import annotations

from pathlib import Path

RANK_EXIT_DIR_ENV = "LENET_RANK_EXIT_DIR"  # where a rank of `lenet train --nproc` writes its code


def launch(nproc: int) -> tuple[int, bool]:
    """`lenet train --nproc N`: this very command under torchrun's launcher, on this machine.

    A terminal's Ctrl-C reaches torchrun and its ranks (one process group); SIGINT and SIGTERM
    sent to this process alone are passed on to torchrun, which stops its ranks. torchrun exits
    1 whatever failed, so the ranks write their exit codes into a temporary directory
    (cli._leave_group) and this returns what a plain run would have (``job_exit``), and whether
    the job stopped on a signal before any rank could say so (the caller says "interrupted").
    """
    import os
    import shutil
    import sys
    import tempfile

    rest, skip = [], False
    for arg in sys.argv[1:]:
        if skip or arg == "--nproc" or arg.startswith("--nproc="):
            skip = arg == "--nproc"
            continue
        rest.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc-per-node={nproc}", "-m", "lenet_cli", *rest]
    codes = Path(tempfile.mkdtemp(prefix="lenet-ranks-"))
    try:
        code, received = _run_torchrun(cmd, {**os.environ, RANK_EXIT_DIR_ENV: str(codes)})
        told = {f.name[5:]: f.read_text().strip() for f in codes.glob("rank-*")}
    finally:
        shutil.rmtree(codes, ignore_errors=True)
    return job_exit(code, received, told, nproc), code != 0 and bool(received) and not told


def job_exit(torchrun: int, received: list[int], told: dict[str, str], ranks_n: int) -> int:
    """`--nproc`'s exit code from torchrun's, the signals this process got and the codes the
    ranks wrote ({rank: code}, as text): what a plain run would have exited with. A signal that
    came after every rank finished (all said 0) changes nothing. A rank that torchrun stopped
    with SIGTERM after another failed exits 143: the other's code is the cause, and when that
    rank said nothing (killed outright) the job lost a rank, exit 15. Every rank stopped by a
    signal sent to them (not to this process) is the signal's code."""
    from lenet_cli.errors import DistributedError

    if torchrun == 0 or (len(told) == ranks_n and all(c == "0" for c in told.values())):
        return 0
    if received:
        return 128 + received[0]
    ranks = sorted((int(r), int(c)) for r, c in told.items() if r.isdigit() and c.isdigit())
    failed = [c for _, c in ranks if c != 0]
    cause = [c for c in failed if c not in (130, 143)]
    if cause:
        return cause[0]
    if failed:
        return failed[0] if len(ranks) == ranks_n else DistributedError.exit_code
    return torchrun


def _run_torchrun(cmd: list[str], env: dict[str, str]) -> tuple[int, list[int]]:
    """torchrun's exit code, and the signals this process received (each passed on).

    The handler is in place before torchrun starts: a signal that lands while it starts (before
    its own handlers, or between fork and exec, where it would be lost) is passed on after."""
    import signal
    import subprocess

    received: list[int] = []
    procs: list[subprocess.Popen] = []

    def on_signal(signum: int, _frame) -> None:  # noqa: ANN001
        received.append(signum)
        if procs:  # also a terminal's Ctrl-C, which reached torchrun too: it takes two
            procs[0].send_signal(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        procs.append(subprocess.Popen(cmd, env=env))
        if received:  # while it started: it may not have seen it
            procs[0].send_signal(received[0])
        return procs[0].wait(), received
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
