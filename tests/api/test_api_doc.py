"""docs/api.md's notebook session, run as written: its cells in one fresh process."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from conftest import REPO

DOC = REPO / "docs" / "api.md"


def cells() -> list[str]:
    """The ```python blocks of docs/api.md, in order: the cells of its notebook session."""
    return re.findall(r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.M | re.S)


def test_the_notebook_session_of_docs_api_md_runs(tmp_path):
    code = "\n".join(cells())
    assert "lenet.train(" in code and "callbacks=" in code and "model=SmallNet()" in code
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    # the callback stopped it at epoch 2, and said so in the summary
    assert "callback by StopAtEpoch.on_epoch_end at step 158" in out
    assert out[1].startswith("epoch 1: test accuracy") and out[2].startswith("epoch 2:")
    rows = [json.loads(line) for line in (tmp_path / "runs/nb/metrics.jsonl").open()]
    assert [r["epoch"] for r in rows] == [1, 2]
    # the second run in the same process: given tensors and model, recorded as such
    assert "runs/own python python:SmallNet" in out
    env = json.loads((tmp_path / "runs/own/env.json").read_text())
    assert env["given_in_python"]["model"] == "__main__.SmallNet"
    # predictions of the first three test digits, then their labels
    assert out[-4].startswith("images[2] ") and out[-3] == "[7 2 1]"
    assert [line.split()[1] for line in out[-6:-3]] == ["7", "2", "1"]
    # the export verified, and the error's class and exit code
    assert (tmp_path / "nb.safetensors").is_file() and out[-2].endswith("10000 of 10000")
    assert out[-1] == "UsageError 2 --epochs must be at least 1, got 0"
    # stdout is the cells' prints; the progress went to stderr as plain lines
    assert "run dir runs/own" in done.stderr and "\x1b" not in done.stderr
