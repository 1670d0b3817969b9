"""files.py: a file is read only when it is a regular file, and never waited on."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

from lenet_cli.files import seal


def test_a_sealed_file_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "entry.pt")
    (tmp_path / "good.pt").write_bytes(seal(b"body"))
    code = (
        "import sys\n"
        "from lenet_cli.files import SealError, read_sealed\n"
        "print(read_sealed(sys.argv[2], 100))\n"
        "try:\n"
        "    read_sealed(sys.argv[1], 100)\n"
        "except SealError as e:\n"
        "    print('refused:', e)\n"
    )
    args = [sys.executable, "-c", code, str(tmp_path / "entry.pt"), str(tmp_path / "good.pt")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["b'body'", "refused: is a FIFO, not a regular file"]
