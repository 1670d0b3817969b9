"""Ctrl-C and SIGTERM during training: a checkpoint is saved, exit 130 / 143, resume works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lenet_cli.runs.checkpoint import load_checkpoint


def _start(out, name: str) -> subprocess.Popen:
    env = {**os.environ, "LENET_OFFLINE": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lenet_cli",
            "train",
            "--data",
            "random",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--epochs",
            "100000",
            "--batch-size",
            "32",
            "--scheduler",
            "none",  # so that the resume below may set --max-steps
            "--progress",
            "plain",
            "--log-every",
            "1",  # a metrics.jsonl row per step: the test sees training under way
            "--out",
            str(out),
            "--name",
            name,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )


def _wait_for_steps(proc: subprocess.Popen, metrics, steps: int) -> None:
    """Return once ``metrics`` holds ``steps`` step rows (the run's --log-every 1)."""
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count('"kind": "step"') >= steps):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no training steps logged in 120 s"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_exits_with_its_code(tmp_path, sig, code):
    proc = _start(tmp_path, "s")
    try:
        _wait_for_steps(proc, tmp_path / "s" / "metrics.jsonl", 5)  # well into training
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    name = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
    assert f"interrupted by {name}" in err and "--resume" in err
    saved = load_checkpoint(tmp_path / "s" / "last.pt")
    assert saved["step"] > 0
    # --resume continues from it (a few more steps)
    target = saved["step"] + 3
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "lenet_cli",
            "train",
            "--resume",
            str(tmp_path / "s"),
            "--max-steps",
            str(target),
            "--progress",
            "none",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == target


@pytest.mark.slow
def test_sigterm_in_the_first_epoch_then_resume_finishes_it(tmp_path):
    # batch 1 on the 5,000-digit sample: the first epoch lasts long enough to be interrupted
    args = ["--data", "mnist-sample", "--batch-size", "1", "--no-fused", "--epochs", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lenet_cli", "train", *args, "--device", "cpu", "--threads", "1"]
        + ["--progress", "plain", "--out", str(tmp_path), "--name", "e"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "LENET_OFFLINE": "1"},
        text=True,
    )
    try:
        for line in proc.stderr:
            if line.startswith("training on"):
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    run = tmp_path / "e"
    assert load_checkpoint(run / "last.pt")["epoch"] == 0  # interrupted inside epoch 1
    assert not (run / "metrics.jsonl").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "lenet_cli", "train", "--resume", str(run), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert (summary["epochs"], summary["steps"]) == (1, 5000)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["partial"]) for r in rows] == [(1, False)]


def _says_interrupted_and_exits_130(hook: str) -> None:
    """``hook``, a script that runs `lenet` with a Ctrl-C somewhere in its start, exits 130 with
    exactly one line on stderr and nothing on stdout."""
    r = subprocess.run([sys.executable, "-c", hook], capture_output=True, text=True, timeout=60)
    assert r.returncode == 130, r.stderr
    assert r.stderr == "error: interrupted\n" and r.stdout == ""


def test_ctrl_c_while_the_cli_starts_is_one_line_and_exit_130():
    """Ctrl-C in the first second (the command modules still importing): no traceback."""
    hook = (
        "import sys, runpy\n"
        "class Stop:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'lenet_cli.cli.viz_cmds':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Stop())\n"
        "sys.argv = ['lenet', 'train', '--help']\n"
        "runpy.run_module('lenet_cli', run_name='__main__')\n"
    )
    _says_interrupted_and_exits_130(hook)


@pytest.mark.parametrize(
    ("module", "argv0"),
    [
        ("lenet_cli.config", "/venv/bin/lenet"),  # the package's own imports, from the script
        ("lenet_cli.config", "-m"),  # the same under `python -m lenet_cli`
        ("lenet_cli.scale.launch", "/venv/bin/lenet"),  # the last of the command modules
        ("lenet_cli.interrupts", "/venv/bin/lenet"),  # main()'s set-up
        ("pydantic", "/venv/bin/lenet"),  # Typer reading the root's options imports it
    ],
)
def test_ctrl_c_anywhere_in_start_up_is_one_line_and_exit_130(module, argv0):
    """A Ctrl-C as the named module starts to import (once): no traceback, and never the
    silent exit 130 that Typer gives a Ctrl-C while it reads options."""
    hook = (
        "import sys\n"
        "class Stop:\n"
        "    done = False\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r} and not Stop.done:\n"
        "            Stop.done = True\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Stop())\n"
        f"sys.argv = [{argv0!r}, 'inspect-params', '--json']\n"
        "if sys.argv[0] == '-m':\n"
        "    import runpy\n"
        "    runpy.run_module('lenet_cli', run_name='__main__', alter_sys=True)\n"
        "from lenet_cli.cli import main\n"
        "sys.exit(main())\n"
    )
    _says_interrupted_and_exits_130(hook)


def test_ctrl_c_in_typers_own_code_is_one_line_and_exit_130():
    """Typer turns a KeyboardInterrupt raised in its own code (here as it enters the command's
    context, outside the group's handlers) into a bare exit 130; `lenet` still says the line.
    A Ctrl-C delivered again after an import or pydantic held it can land there."""
    hook = (
        "import sys\n"
        "from typer import _click\n"
        "enter = _click.Context.__enter__\n"
        "def stop(self):\n"
        "    if sys._getframe(1).f_code.co_name == '_main':\n"
        "        raise KeyboardInterrupt\n"
        "    return enter(self)\n"
        "_click.Context.__enter__ = stop\n"
        "sys.argv = ['/venv/bin/lenet', 'data', '--help']\n"
        "from lenet_cli.cli import main\n"
        "sys.exit(main())\n"
    )
    _says_interrupted_and_exits_130(hook)


def test_a_program_importing_the_library_keeps_its_ctrl_c():
    hook = (
        "import sys\n"
        "class Stop:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'lenet_cli.config':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Stop())\n"
        "try:\n"
        "    import lenet_cli\n"
        "except KeyboardInterrupt:\n"
        "    print('caught')\n"
    )
    r = subprocess.run([sys.executable, "-c", hook], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "caught\n" and r.stderr == ""


def _ctrl_c_with_a_stand_in(tmp_path, package: str, source: str, call: str) -> str:
    """What a script prints that installs lenet's Ctrl-C handler, then runs ``call`` with a
    stand-in ``package`` (``source``) that sends itself SIGINT and catches it, as the real one
    does: 'interrupted' when the Ctrl-C still stops it."""
    (tmp_path / package).mkdir()  # this process never imports the real package
    (tmp_path / package / "__init__.py").write_text(source)
    script = (
        "import time\n"
        "from lenet_cli.interrupts import sigint_outside_imports\n"
        "sigint_outside_imports()\n"
        "try:\n"
        f"    {call}\n"
        "    time.sleep(10)\n"
        "    print('lost')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
        "except Exception as e:\n"
        "    print(type(e).__name__)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    return r.stdout.strip()


def test_ctrl_c_inside_an_import_that_swallows_it_still_stops(tmp_path):
    """Some of torch's imports catch a KeyboardInterrupt: the Ctrl-C must not be lost."""
    source = (
        "import os, signal, time\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.5)\n"
        "except KeyboardInterrupt:\n"
        "    pass\n"
    )
    assert _ctrl_c_with_a_stand_in(tmp_path, "torch", source, "import torch") == "interrupted"


def test_ctrl_c_while_pydantic_builds_a_validator_still_stops(tmp_path):
    """pydantic's core turns a KeyboardInterrupt raised while it builds a validator into a
    SchemaError (Typer's option parsing, FastAPI's models): the Ctrl-C must stop the command."""
    source = (
        "import os, signal, time\n"
        "class SchemaError(Exception):\n"
        "    pass\n"
        "def build():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(0.5)\n"
        "    except KeyboardInterrupt as e:\n"
        "        raise SchemaError(f'KeyboardInterrupt: {e}') from None\n"
    )
    call = "import pydantic; pydantic.build()"
    assert _ctrl_c_with_a_stand_in(tmp_path, "pydantic", source, call) == "interrupted"
