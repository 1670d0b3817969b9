"""`lenet train --nproc N`: the launcher that starts N ranks of this very command under torchrun.

Standard library only (the ranks import torch, the launcher does not). torchrun runs in a
session of its own, quietly (torchrun.py): a terminal's Ctrl-C reaches this process alone, which
passes the signal on once, and the user reads one line per failure, not torchrun's logging and
tracebacks. Each rank writes its exit code, and the error line it would print, into a temporary
directory named by ``RANK_EXIT_DIR_ENV`` (cli._leave_group, ``say_to_launcher``): torchrun exits
1 whatever failed, and the rank that said why may have been stopped by torchrun before it
could print. ``job_exit`` turns the codes into the one a plain run would have exited with, and
this process prints the line of the rank whose code that is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

RANK_EXIT_DIR_ENV = "LENET_RANK_EXIT_DIR"  # where a rank of `lenet train --nproc` writes its code
_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # passed on to torchrun, the first one only


def say_to_launcher(message: str) -> bool:
    """In a rank of `lenet train --nproc`: keep the error line ``message`` for the launcher,
    which prints the one of the rank whose code the job exits with. False elsewhere (plain
    torchrun, or no rank at all): the caller prints it as usual."""
    tell, rank = os.environ.get(RANK_EXIT_DIR_ENV), os.environ.get("RANK", "")
    if not (tell and rank.isdigit()):
        return False
    try:
        (Path(tell) / f"rank-{rank}.said").write_text(message, encoding="utf-8")
    except OSError:
        return False
    return True


def interrupted_while_starting() -> NoReturn:
    """Ctrl-C while `lenet` starts (its modules import, Typer builds the command): exit 130
    with one line, as during a command, instead of a KeyboardInterrupt traceback. Rich may not
    be imported yet. A data-parallel rank other than 0 leaves the line to rank 0."""
    import sys

    from lenet_cli.errors import EXIT_SIGINT, other_rank

    if not say_to_launcher("interrupted") and not other_rank() and sys.stderr is not None:
        try:
            sys.stderr.write("error: interrupted\n")
            sys.stderr.flush()
        except OSError:  # stderr closed, or a file that is not writable
            pass
    raise SystemExit(EXIT_SIGINT)


def launch(nproc: int) -> tuple[int, str | None]:
    """`lenet train --nproc N`: this very command under torchrun's launcher, on this machine.

    Returns the exit code a plain run would have (``job_exit``) and the error line to print
    (None after a success): the line of the rank whose code that is, else what is known."""
    import shutil
    import sys
    import tempfile

    rest, skip = [], False
    for arg in sys.argv[1:]:
        if skip or arg == "--nproc" or arg.startswith("--nproc="):
            skip = arg == "--nproc"
            continue
        rest.append(arg)
    debug = os.environ.get("LENET_DEBUG", "") not in ("", "0") or "--debug" in sys.argv[1:]
    runner = "torch.distributed.run" if debug else "lenet_cli.scale.torchrun"
    cmd = [sys.executable, "-m", runner, "--standalone"]
    cmd += [f"--nproc-per-node={nproc}", "-m", "lenet_cli", *rest]
    # torchrun sets OMP_NUM_THREADS=1 for the ranks when it is unset (and says so at length);
    # each rank sets its own thread count anyway (cli/train_cmds._device)
    env = {"OMP_NUM_THREADS": "1", **os.environ}
    codes = Path(tempfile.mkdtemp(prefix="lenet-ranks-"))
    try:
        code, received = _run_torchrun(cmd, {**env, RANK_EXIT_DIR_ENV: str(codes)})
        told = {f.name[5:]: f.read_text().strip() for f in codes.glob("rank-*[0-9]")}
        said = {f.name[5:-5]: f.read_text(errors="replace") for f in codes.glob("rank-*.said")}
    finally:
        shutil.rmtree(codes, ignore_errors=True)
    exit_code = job_exit(code, received, told, nproc)
    return exit_code, _message(exit_code, code, received, told, said)


def _message(
    exit_code: int, torchrun: int, received: list[int], told: dict, said: dict
) -> str | None:
    """The one error line of the job: the line of the first rank whose code is the job's."""
    import signal

    if exit_code == 0:
        return None
    for rank in sorted(told, key=lambda r: int(r) if r.isdigit() else 0):
        if told[rank] == str(exit_code) and said.get(rank):
            return said[rank]
    if received:
        return f"interrupted by {signal.Signals(received[0]).name}"
    return (
        f"the data-parallel job ended (torchrun exit {torchrun}) before any rank said why; "
        "rerun with LENET_DEBUG=1 to see torchrun's own output"
    )


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
    """torchrun's exit code, and the signals this process received (the first passed on).

    torchrun runs in a session of its own, so that a terminal's Ctrl-C (sent to the whole
    foreground process group) reaches it once, from here: a second SIGINT during its shutdown
    made it stop its ranks with SIGTERM instead. The handler is in place before torchrun starts:
    a signal that lands while it starts is passed on after."""
    import signal
    import subprocess

    received: list[int] = []
    procs: list[subprocess.Popen] = []
    passed: list[int] = []

    def on_signal(signum: int, _frame) -> None:  # noqa: ANN001
        received.append(signum)
        if procs and len(received) == 1:
            procs[0].send_signal(signum)
            passed.append(signum)

    sigs = [getattr(signal, name) for name in _SIGNALS if hasattr(signal, name)]
    old = {s: signal.signal(s, on_signal) for s in sigs}
    try:
        procs.append(subprocess.Popen(cmd, env=env, start_new_session=True))
        if received and not passed:  # while it started: it may not have seen it
            passed.append(received[0])
            procs[0].send_signal(received[0])
        return procs[0].wait(), received
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
