"""The compiled kernel as a file the tool reads back: built once, verified before loading, rebuilt
when damaged; its struct interface checked on both sides; a clear fall-back without a compiler."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys

import pytest
import torch

from lenet_cli.errors import UsageError
from lenet_cli.fast import fused, kernel, speed

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None, reason="needs a C compiler to build the kernel"
)


def _lenet(tmp_path, *args, env_extra=None):
    env = {**os.environ, "LENET_KERNEL_DIR": str(tmp_path / "kernels"), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "lenet_cli", *args], capture_output=True, text=True, env=env,
        timeout=300,
    )  # fmt: skip


def _train(tmp_path, name, *args, env_extra=None):
    cmd = ["train", "--data", "random", "--epochs", "1", "--device", "cpu", "--batch-size", "256"]
    return _lenet(tmp_path, *cmd, "--out", str(tmp_path / "runs"), "--name", name, *args,
                  env_extra=env_extra)  # fmt: skip


def _built(tmp_path):
    (so,) = (tmp_path / "kernels").glob("whole_net-*.so")
    return so


def test_without_a_compiler_the_default_says_so_and_trains(tmp_path):
    done = _train(tmp_path, "a", env_extra={"CC": "/nonexistent/cc"})
    assert done.returncode == 0, done.stderr
    assert "fused CPU kernel not available (no C compiler" in done.stderr
    assert "using PyTorch's ops" in done.stderr


def test_asking_for_the_kernel_without_a_compiler_is_an_error(tmp_path):
    done = _train(tmp_path, "b", "--fused", env_extra={"CC": "/nonexistent/cc"})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--fused" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs" / "b").exists()


@pytest.mark.slow
def test_a_truncated_cached_kernel_is_rebuilt_for_train_and_evaluate(tmp_path):
    """A truncated shared object used to kill every command with SIGBUS; now its recorded hash
    does not match, so it is rebuilt before anything maps it."""
    first = _train(tmp_path, "c")
    assert first.returncode == 0, first.stderr
    assert "fused kernels" in first.stderr
    so = _built(tmp_path)
    assert so.with_suffix(".sha256").read_text().strip() == kernel._digest(so)
    stamp = so.stat().st_mtime_ns
    again = _train(tmp_path, "d")  # a sound cache is used as it is
    assert again.returncode == 0, again.stderr
    assert so.stat().st_mtime_ns == stamp
    for command in (lambda: _train(tmp_path, "e"),
                    lambda: _lenet(tmp_path, "evaluate", "--checkpoint",
                                   str(tmp_path / "runs" / "c"), "--json")):  # fmt: skip
        os.truncate(so, so.stat().st_size // 3)
        done = command()
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "not available" not in done.stderr
        assert kernel._digest(so) == so.with_suffix(".sha256").read_text().strip()  # rebuilt
    assert list((tmp_path / "kernels").glob(".build-*")) == []


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped byte", "replaced", "no hash"])
def test_a_damaged_cached_kernel_is_rebuilt(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("LENET_KERNEL_DIR", str(tmp_path / "kernels"))
    so = kernel.build()
    good = so.read_bytes()
    if damage == "truncated":
        os.truncate(so, len(good) // 2)
    elif damage == "empty":
        so.write_bytes(b"")
    elif damage == "flipped byte":
        so.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    elif damage == "replaced":
        so.write_bytes(b"\x7fELF" + b"\0" * (len(good) - 4))
    else:
        so.with_suffix(".sha256").unlink()
    assert kernel.build() == so
    assert kernel._digest(so) == so.with_suffix(".sha256").read_text().strip()
    assert so.stat().st_size > 0


def test_an_interface_mismatch_is_a_notice_and_pytorchs_ops(monkeypatch):
    """A library whose struct version or size differs from kernel.Args is never called."""
    assert kernel.status() is None
    monkeypatch.setattr(kernel, "ABI", kernel.ABI + 1)
    monkeypatch.setattr(kernel, "_lib", None)
    monkeypatch.setattr(kernel, "_reason", None)
    reason = kernel.status()
    assert reason is not None and "interface" in reason
    use, note = speed.fused_choice(torch.device("cpu"), None)
    assert use is False and "using PyTorch's ops" in note
    with pytest.raises(UsageError, match="not available"):
        speed.fused_choice(torch.device("cpu"), True)


def test_the_limits_python_checks_are_the_ones_the_library_reports(tmp_path, monkeypatch):
    """lenet_args.h is the one source of the kernel's limits: the loaded library reports the
    header's values, and fused.py refuses tensors by what the library reports."""
    assert kernel.status() is None
    program = tmp_path / "limits.c"
    program.write_text(
        '#include <stdio.h>\n#include "lenet_args.h"\nint main(void) {\n'
        '    printf("%d %d %d %d %d", LENET_MAX_SIDE, LENET_MAX_C1, LENET_MAX_K2, LENET_MAX_W1,\n'
        "           LENET_LANES);\n    return 0;\n}\n"
    )
    exe = tmp_path / "limits"
    subprocess.run(["cc", "-I", str(kernel.HEADER.parent), "-o", str(exe), str(program)],
                   check=True, timeout=60)  # fmt: skip
    header = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    assert kernel.limits() == tuple(int(v) for v in header.split())
    assert kernel.limits().max_side == ctypes.c_int32.in_dll(kernel._lib, "lenet_max_side").value

    from lenet_cli.model import build_model

    net = build_model("tutorial")
    params = [getattr(getattr(net, n), k) for n in fused.LAYERS for k in ("weight", "bias")]
    x = torch.randn(2, 1, 32, 32)
    assert fused.unfit(x, params) is None
    monkeypatch.setattr(kernel, "_limits", kernel.limits()._replace(max_side=31))
    assert "up to 31x31" in fused.unfit(x, params)
    monkeypatch.setattr(kernel, "_limits", kernel.limits()._replace(max_side=64, max_c1=5))
    assert "conv layers" in fused.unfit(x, params)  # conv1's 6 channels


def test_a_library_without_the_limits_is_not_used(tmp_path, monkeypatch):
    """A library that does not export the limits (another build of the source) is refused at
    load time, with the reason, like a struct mismatch."""
    source = tmp_path / "old.c"
    calls = "".join(f"int {name}(void *a) {{ return 0; }}\n" for name in ("lenet_forward",
                    "lenet_backward", "lenet_train_step"))  # fmt: skip
    source.write_text(
        f"int lenet_abi(void) {{ return {kernel.ABI}; }}\n"
        f"int lenet_args_size(void) {{ return {ctypes.sizeof(kernel.Args)}; }}\n{calls}"
    )
    lib = tmp_path / "old.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(source)], check=True, timeout=60)
    monkeypatch.setattr(kernel, "build", lambda: lib)
    monkeypatch.setattr(kernel, "_lib", None)
    monkeypatch.setattr(kernel, "_limits", None)
    monkeypatch.setattr(kernel, "_reason", None)
    reason = kernel.status()
    assert reason is not None and "lenet_max_side" in reason
    with pytest.raises(RuntimeError, match="not available"):
        kernel.limits()


@pytest.mark.slow
def test_a_changed_header_is_built_anew(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_KERNEL_DIR", str(tmp_path / "kernels"))
    sources = tmp_path / "src"
    shutil.copytree(kernel.SOURCE.parent, sources)
    monkeypatch.setattr(kernel, "SOURCE", sources / kernel.SOURCE.name)
    monkeypatch.setattr(kernel, "HEADER", sources / kernel.HEADER.name)
    first = kernel.build()
    kernel.HEADER.write_text(kernel.HEADER.read_text() + "/* changed */\n")
    second = kernel.build()
    assert second != first and second.is_file() and first.is_file()


def _struct(**fields) -> kernel.Args:
    """A lenet_args for 32x32 tutorial images with every pointer set to a live buffer."""
    buf = torch.zeros(1 << 18)  # more than the largest weight (fc1: 120 x 576)
    a = kernel.Args(abi=kernel.ABI, size=ctypes.sizeof(kernel.Args), n=1, h=32, w=32, c1=6)
    a.k1, a.k2, a.o1, a.o2, a.o3, a.threads = 3, 3, 120, 84, 10, 1
    a.s1[:], a.s2[:] = (9, 9, 3, 1), (54, 9, 3, 1)
    a.x = a.scores = buf.data_ptr()
    a.prm[:] = [buf.data_ptr()] * 10
    for name, value in fields.items():
        setattr(a, name, value)
    a._buf = buf  # alive as long as the struct
    return a


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, 0),
        ({"size": ctypes.sizeof(kernel.Args) - 8}, 2),  # a caller built for another layout
        ({"abi": kernel.ABI + 1}, 2),
        ({"h": 200}, 3),  # larger than the kernel's image buffer
        ({"c1": 17}, 3),
        ({"k2": 15}, 3),  # a window larger than block 1's output
        ({"n": 0}, 3),
        ({"x": None}, 3),
    ],
)
def test_the_c_side_checks_the_struct_before_using_it(fields, code):
    assert kernel.status() is None
    assert kernel._lib.lenet_forward(ctypes.byref(_struct(**fields))) == code
    if code:  # the backward checks the same, before its own pointers
        assert kernel._lib.lenet_backward(ctypes.byref(_struct(**fields))) == code


def test_the_python_side_refuses_tensors_the_kernel_cannot_take():
    from lenet_cli.model import build_model

    net = build_model("tutorial")
    params = [getattr(getattr(net, n), k) for n in fused.LAYERS for k in ("weight", "bias")]
    with pytest.raises(ValueError, match="cannot run"):
        fused._kernel_forward(torch.randn(2, 1, 28, 28), params, keep=False)
    with pytest.raises(ValueError, match="cannot run"):
        fused._kernel_forward(torch.randn(2, 1, 32, 32).double(), params, keep=False)
    scores, *kept = fused._kernel_forward(torch.randn(2, 1, 32, 32), params, keep=False)
    with pytest.raises(ValueError, match="what the forward kept"):
        fused._kernel_backward(torch.randn(2, 1, 32, 32), params, torch.ones_like(scores), kept)


def test_an_unusable_kernel_directory_is_named_with_its_fix(tmp_path, monkeypatch):
    """LENET_KERNEL_DIR naming a file: the reason says where and what to set (it said
    "[Errno 17] File exists", and --fused's hint asked for a compiler)."""
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    monkeypatch.setenv("LENET_KERNEL_DIR", str(blocker))
    with pytest.raises(OSError, match="afile .not a directory.; set LENET_KERNEL_DIR"):
        kernel.build()
