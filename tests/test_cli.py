"""The command line as a user meets it: exit codes, stdout JSON, stderr apart."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lenet_cli.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_inspect_params_json_lists_the_tutorials_shapes():
    r = run("inspect-params", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["total"] == 81_194
    assert [p["shape"] for p in doc["parameters"]][:2] == [[6, 1, 3, 3], [6]]
    assert len(doc["parameters"]) == 10
    assert doc["parameters"][4]["name"] == "fc1.weight"


def test_inspect_params_lenet5():
    doc = json.loads(run("inspect-params", "--arch", "lenet5", "--json").stdout)
    assert doc["total"] == 61_706
    assert doc["parameters"][4]["shape"] == [120, 400]


def test_inspect_params_table():
    r = run("inspect-params")
    assert r.exit_code == 0
    for text in ("81,194", "conv1.weight", "16*6*6 = 576", "[1, 6, 30, 30]"):
        assert text in r.stdout


def test_forward_random_json_is_reproducible():
    a = run("forward", "--random", "--seed", "0", "--device", "cpu", "--json")
    b = run("forward", "--random", "--seed", "0", "--device", "cpu", "--json")
    assert a.exit_code == 0 and b.exit_code == 0
    assert json.loads(a.stdout) == json.loads(b.stdout)
    doc = json.loads(a.stdout)
    assert len(doc["output"]) == 1 and len(doc["output"][0]) == 10
    c = json.loads(run("forward", "--random", "--seed", "1", "--device", "cpu", "--json").stdout)
    assert c["output"] != doc["output"]


def test_forward_batch():
    doc = json.loads(run("forward", "--random", "--batch-size", "4", "--json").stdout)
    assert len(doc["output"]) == 4 and len(doc["predicted"]) == 4


def test_forward_auto_device_says_what_it_picked():
    r = run("forward", "--random")
    assert r.exit_code == 0
    assert "device auto:" in r.stderr
    assert "device auto" not in r.stdout
    assert "grad_fn=<AddmmBackward0>" in r.stdout


def test_forward_without_input_says_which_inputs_it_takes():
    r = run("forward")
    assert r.exit_code == 2
    assert "--random" in r.stderr and "--image" in r.stderr
    assert r.stdout == ""


def test_step_json_shows_the_walkthrough():
    r = run("step", "--json", "--device", "cpu")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["conv1_bias_grad_before"] is None  # what torch 2.x prints after zero_grad()
    assert any(v != 0 for v in doc["conv1_bias_grad_after"])
    assert doc["manual_vs_sgd_max_abs_diff"] <= 1e-7


def test_step_table():
    r = run("step", "--device", "cpu", "--loss", "cross-entropy")
    assert r.exit_code == 0
    assert "ln 10" in r.stdout and "torch.optim.SGD" in r.stdout


@pytest.mark.parametrize("device", ["cuda", "cuda:3", "mps"])
def test_unavailable_device_is_an_error_not_a_fallback(device):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = run("forward", "--random", "--device", device)
    assert r.exit_code == 3
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and device in lines[0] and "Traceback" not in r.stderr


def test_unknown_device_is_a_usage_error():
    r = run("step", "--device", "gpu")
    assert r.exit_code == 2
    assert "gpu" in r.stderr


def test_bad_choice_is_a_usage_error():
    r = run("inspect-params", "--arch", "alexnet")
    assert r.exit_code == 2


def test_version():
    r = run("--version")
    assert r.exit_code == 0 and r.stdout.startswith("lenet ")


def _no_torch(code: str) -> None:
    probe = f"import sys\n{code}\nsys.exit(3 if 'torch' in sys.modules else 0)"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, f"torch was imported: {proc.stderr}"


def test_importing_the_cli_does_not_import_torch():
    _no_torch("import lenet_cli.cli, lenet_cli.ui, lenet_cli.config, lenet_cli.errors")


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["train", "--help"],
        ["inspect-params", "--help"],
        ["data", "--help"],
    ],
)
def test_help_does_not_import_torch(argv):
    code = (
        "from lenet_cli.cli import app\n"
        "try:\n"
        f"    app({argv!r}, prog_name='lenet')\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code"
    )
    _no_torch(code)


def test_help_lists_every_command_and_defaults():
    r = run("--help")
    assert r.exit_code == 0
    for cmd in ("inspect-params", "forward", "step"):
        assert cmd in r.stdout
    r = run("forward", "--help")
    assert "default: tutorial" in r.stdout and "default: auto" in r.stdout


def test_debug_shows_the_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "lenet_cli", "--debug", "forward", "--random", "--device", "mps"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_inspect_params_of_a_trained_checkpoint_adds_statistics(random_run):
    r = run("inspect-params", "--checkpoint", str(random_run), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["total"] == 81_194
    first = doc["parameters"][0]
    assert {"mean", "std", "min", "max"} <= set(first) and first["min"] <= first["max"]
    fresh = json.loads(run("inspect-params", "--json").stdout)["parameters"][0]
    assert "mean" not in fresh


def test_forward_random_through_a_checkpoint(random_run):
    a = run("forward", "--random", "--checkpoint", str(random_run), "--device", "cpu", "--json")
    b = run("forward", "--random", "--device", "cpu", "--json")
    assert a.exit_code == 0, a.output
    assert json.loads(a.stdout)["output"] != json.loads(b.stdout)["output"]


def test_a_missing_checkpoint_is_one_line_exit_6(tmp_path):
    r = run("inspect-params", "--checkpoint", str(tmp_path / "nope.pt"))
    assert r.exit_code == 6
    assert len(r.stderr.strip().splitlines()) == 1 and "nope.pt" in r.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["forward", "--random", "--batch-size", "0"], ["--batch-size", "lenet forward --help"]),
        (["inspect-params", "--arch", "alexnet"], ["--arch", "alexnet"]),
        (["predict"], ["Missing argument"]),
        (["--bogus"], ["--bogus", "lenet --help"]),
        (["nosuch"], ["nosuch"]),
    ],
)
def test_typer_usage_errors_are_one_line_exit_2(args, words):
    r = run(*args)
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for word in words:
        assert word in lines[0]
    assert r.stdout == ""


@pytest.mark.parametrize("lr", ["inf", "nan", "1e308", "-1"])
def test_step_refuses_an_lr_it_cannot_use(lr):
    r = run("step", "--device", "cpu", "--json", "--lr", lr)
    assert r.exit_code == 2
    assert "--lr" in r.stderr and "internal error" not in r.stderr and r.stdout == ""


def test_print_json_writes_non_finite_numbers_as_null(capsys):
    from lenet_cli import ui

    ui.print_json({"loss": float("nan"), "rows": [[1.0, float("inf")]], "n": 3})
    out = capsys.readouterr().out
    assert json.loads(out) == {"loss": None, "rows": [[1.0, None]], "n": 3}


def test_control_characters_in_user_text_are_shown_not_sent():
    from lenet_cli.ui.console import safe

    assert "\x1b" not in safe("digit\x1b[2J.png") and "\\x1b" in safe("digit\x1b[2J.png")
    assert safe("[red]seven.png") == "\\[red]seven.png"  # Rich markup stays literal


def test_data_dir_with_random_data_is_refused_not_ignored(tmp_path):
    r = run("train", "--data", "random", "--data-dir", str(tmp_path), "--out", str(tmp_path))
    assert r.exit_code == 2 and "--data-dir" in r.stderr and "random" in r.stderr


def test_data_dir_that_is_a_file_says_so(tmp_path):
    f = tmp_path / "notadir"
    f.write_text("x")
    r = run("data", "verify", "mnist", "--data-dir", str(f))
    assert r.exit_code == 4 and "not a directory" in r.stderr


@pytest.mark.parametrize(("code", "left_with"), [(None, 0), (0, 0), (15, 15), ("boom", 1)])
def test_a_data_parallel_rank_leaves_with_typers_exit_code(
    monkeypatch, capsys, tmp_path, code, left_with
):
    """A rank that joined a process group ends through distributed.leave (no interpreter
    finalization, where gloo's threads can abort it) with the code Typer ends with, and tells
    that code to `lenet train --nproc` (torchrun's own is 1 whatever failed)."""
    import types

    from lenet_cli import cli, interrupts

    monkeypatch.setattr(interrupts, "sigint_outside_imports", lambda: None)  # keep pytest's
    monkeypatch.setenv(cli.RANK_EXIT_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("RANK", "3")
    left = []
    fake = types.SimpleNamespace(joined=True, leave=lambda c: left.append(c) or sys.exit(c))
    monkeypatch.setitem(sys.modules, "lenet_cli.training.distributed", fake)
    monkeypatch.setattr(cli, "app", lambda **_: sys.exit(code))
    with pytest.raises(SystemExit):
        cli.main()
    assert left == [left_with]
    assert (tmp_path / "rank-3").read_text() == f"{left_with}\n"
    assert ("boom" in capsys.readouterr().err) == (code == "boom")
    fake.joined = False  # a plain process ends as Typer says
    left.clear()
    with pytest.raises(SystemExit):
        cli.main()
    assert left == []


@pytest.mark.parametrize(
    ("torchrun", "received", "told", "expected"),
    [
        (0, [], {"0": "0", "1": "0"}, 0),
        (1, [15], {"0": "143", "1": "143"}, 143),  # SIGTERM to the launcher, passed on
        (1, [2], {"0": "130"}, 130),  # Ctrl-C
        (1, [], {"0": "15"}, 15),  # rank 1 was killed outright: rank 0 lost its peers
        (1, [], {"0": "143", "1": "9"}, 9),  # rank 1 failed, torchrun then stopped rank 0
        (1, [], {"1": "2", "0": "15"}, 15),  # the lowest failing rank
        (1, [], {}, 1),  # no rank said anything: torchrun's code
        (1, [], {"0": "x", "y": "4"}, 1),  # unreadable files are ignored
        (1, [2], {"0": "0", "1": "0"}, 0),  # Ctrl-C after both ranks had finished
        (1, [2], {"0": "0"}, 130),  # ... and before rank 1 had
        (1, [], {"0": "143"}, 15),  # rank 1 killed outright; torchrun then stopped rank 0
        (1, [], {"0": "143", "1": "143"}, 143),  # SIGTERM sent to the ranks themselves
    ],
)
def test_nproc_exits_with_what_a_plain_run_would(torchrun, received, told, expected):
    from lenet_cli.scale.launch import job_exit

    assert job_exit(torchrun, received, told, 2) == expected


@pytest.mark.parametrize(("rank", "said"), [("0", True), ("1", False)])
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_rank_0_says_what_every_rank_meets(monkeypatch, rank, said):
    """Under torchrun every rank meets a missing device alike: rank 0 says it, once."""
    for name, value in {"WORLD_SIZE": "2", "RANK": rank, "LOCAL_RANK": rank}.items():
        monkeypatch.setenv(name, value)
    r = run("train", "--data", "random", "--device", "cuda", "--epochs", "1")
    assert r.exit_code == 3
    assert ("cuda" in r.stderr) is said


def test_every_rank_says_it_lost_its_peers(monkeypatch):
    from lenet_cli.errors import DistributedError, other_rank

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert other_rank()
    r = run("train", "--data", "random", "--epochs", "1")  # LOCAL_RANK missing
    assert r.exit_code == DistributedError.exit_code
    assert "rank variables" in r.stderr


def _lenet_in_shell(redirect: str, *args: str) -> subprocess.CompletedProcess:
    """`lenet ARGS REDIRECT` run by sh, so that REDIRECT can close a stream (`>&-`, `2>&-`)."""
    import shlex

    line = shlex.join([sys.executable, "-m", "lenet_cli", *args])
    return subprocess.run(
        ["sh", "-c", f"exec {line} {redirect}"], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("args", [["inspect-params", "--json"], ["inspect-params"], ["--version"]])
def test_closed_stdout_is_exit_11_with_one_line(args):
    proc = _lenet_in_shell(">&-", *args)
    assert proc.returncode == 11, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "stdout is closed" in lines[0] and "Traceback" not in proc.stderr


def test_closed_stdout_and_stderr_is_still_exit_11():
    assert _lenet_in_shell(">&- 2>&-", "inspect-params", "--json").returncode == 11


def test_a_pipe_closed_by_its_reader_is_exit_1_without_a_word():
    """`lenet ... | head -c1`: the reader has gone before the output is written."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lenet_cli", "inspect-params", "--json"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert proc.returncode == 1 and proc.stderr == ""
