"""The C kernel of the whole network (``kernels/whole_net.c``): built, verified, loaded, called.

Layer 2; imports torch only for its OpenMP runtime, prints nothing. ``fused.py`` fills the
struct from Net's tensors and registers the calls as PyTorch ops.

Build: compiled on first use with the system C compiler (``$CC``, else ``cc``) into the user
cache (``$LENET_KERNEL_DIR``, else ``$XDG_CACHE_HOME/lenet/kernels``), named by a hash of the
source and its header, the compiler, the flags and this CPU's feature flags (it is built with
``-march=native``). The SHA-256 of the built file is recorded beside it, and checked before
every ``dlopen``: a truncated, corrupted or replaced file is rebuilt, never mapped (a
truncated shared object kills the process with SIGBUS on first use).

Load: after torch, so that its OpenMP calls run on PyTorch's own threads (the same libgomp).
The interface is one struct, ``Args`` here and ``lenet_args`` in C (``kernels/lenet_args.h``);
the library reports its version and the struct's size, and a mismatch makes the kernel
unavailable (``status()`` says why, and the commands use PyTorch's ops), never a call with a
wrong layout. It also reports the sizes its buffers hold (``limits()``), which fused.py checks
tensors against: the C header is their one source.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

import torch  # noqa: F401  (loaded first: the kernel must share torch's libgomp)

from lenet_cli.fast import cpu

SOURCE = Path(__file__).with_name("kernels") / "whole_net.c"
HEADER = SOURCE.with_name("lenet_args.h")  # included by the source
# -fno-math-errno: sqrtf in the optimizer's update vectorizes (a scalar call per element made
# the Adam update 180 us of a 700 us step instead of 5)
FLAGS = (
    "-O3",
    "-march=native",
    "-fno-trapping-math",
    "-fno-math-errno",
    "-fopenmp",
    "-shared",
    "-fPIC",
)
LIBS = ("-lm",)  # after the source
ABI = 4  # the version of Args; the library's LENET_ABI (lenet_args.h) must be the same
_ERRORS = {
    2: "interface mismatch (struct version or size)",
    3: "sizes the kernel does not handle",
    4: "a label outside the classes",
}

_P, _I4 = ctypes.c_void_p, ctypes.c_int32 * 4  # pointers as addresses (tensors' data_ptr())


class Args(ctypes.Structure):
    """``lenet_args`` field for field (the C file documents each)."""

    _fields_ = [
        *((name, ctypes.c_int32) for name in ("abi", "size", "n", "h", "w", "c1", "k1", "k2")),
        *((name, ctypes.c_int32) for name in ("o1", "o2", "o3", "threads")),
        ("s1", _I4),
        ("s2", _I4),
        ("x", _P),
        ("prm", _P * 10),
        *((name, _P) for name in ("scores", "out1", "idx1", "out2", "idx2", "a1", "a2")),
        ("gscores", _P),
        ("grads", _P * 10),
        ("labels", _P),
        *((name, ctypes.c_int32) for name in ("loss", "opt", "nesterov", "maximize")),
        *((name, ctypes.c_double) for name in ("smoothing", "lr", "momentum", "dampening")),
        *((name, ctypes.c_double) for name in ("weight_decay", "beta1", "beta2", "eps")),
        *((name, _P * 10) for name in ("state1", "state2", "steps")),
        ("loss_mean", ctypes.c_double),
        ("hits", ctypes.c_int64),
        ("rows", _P),
        ("images", ctypes.c_int64),
        ("clip_norm", ctypes.c_double),
        ("clip_value", ctypes.c_double),
    ]


class Limits(NamedTuple):
    """The sizes the kernel handles, as the loaded library reports them (lenet_args.h)."""

    max_side: int  # image height and width
    max_c1: int  # conv1's output channels
    max_k2: int  # conv2's kernel size
    max_w1: int  # the width of the first block's pooled output
    lanes: int  # floats per vector: conv2's output channels, the dense activations' padding


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_limits: Limits | None = None
_reason: str | None = None  # why the kernel is not usable, once tried


def kernel_dir() -> Path:
    """Where built kernels are kept."""
    if os.environ.get("LENET_KERNEL_DIR"):
        return Path(os.environ["LENET_KERNEL_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lenet" / "kernels"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(target: Path) -> bool:
    """Whether ``target`` is the file whose hash was recorded when it was built."""
    try:
        recorded = target.with_suffix(".sha256").read_text(encoding="ascii").strip()
        return _digest(target) == recorded
    except (OSError, UnicodeDecodeError):
        return False


def _compile(cc: str, target: Path) -> None:
    """Build into ``target`` and record its hash; both files replaced atomically."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".build-", suffix=".so")
    except OSError as e:
        odd = target.parent.exists() and not target.parent.is_dir()
        raise OSError(
            f"cannot write the built kernel into {target.parent} "
            f"({'not a directory' if odd else e.strerror or e}); set LENET_KERNEL_DIR to a "
            "writable directory"
        ) from None
    os.close(fd)
    try:
        done = subprocess.run(
            [cc, *FLAGS, "-o", tmp, str(SOURCE), *LIBS], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise OSError(f"{cc} could not build {SOURCE.name}: {last}")
        digest = Path(tmp + ".sha256")
        digest.write_text(_digest(Path(tmp)) + "\n", encoding="ascii")
        os.replace(digest, target.with_suffix(".sha256"))
        os.replace(tmp, target)  # a concurrent build of the same source leaves equal files
    finally:
        for left in (tmp, tmp + ".sha256"):
            if os.path.exists(left):
                os.unlink(left)


def build() -> Path:
    """The verified compiled library's path, (re)building it as needed (raises OSError)."""
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        raise OSError(f"no C compiler ({cc!r} not found; set CC or install gcc)")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
    key = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        HEADER.read_bytes(),
        cc,
        version.stdout,
        " ".join(FLAGS + LIBS),
        cpu.flags(),
    ):
        key.update(part if isinstance(part, bytes) else part.encode())
    target = kernel_dir() / f"{SOURCE.stem}-{key.hexdigest()[:16]}.so"
    if not _verified(target):  # missing, or not the file that was built: build it again
        _compile(cc, target)
        if not _verified(target):
            raise OSError(f"the kernel built into {target} does not match its recorded hash")
    return target


def _open(path: Path) -> tuple[ctypes.CDLL, Limits]:
    """Load the library, check that it speaks this module's interface, read its limits."""
    lib = ctypes.CDLL(str(path))
    lib.lenet_abi.restype = lib.lenet_args_size.restype = ctypes.c_int
    abi, size = lib.lenet_abi(), lib.lenet_args_size()
    if (abi, size) != (ABI, ctypes.sizeof(Args)):
        raise OSError(
            f"kernel interface {abi} ({size} bytes) does not match lenet's "
            f"{ABI} ({ctypes.sizeof(Args)} bytes)"
        )
    for name in ("lenet_forward", "lenet_backward", "lenet_train_step"):
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = [ctypes.POINTER(Args)], ctypes.c_int
    read = (ctypes.c_int32.in_dll(lib, f"lenet_{name}").value for name in Limits._fields)
    return lib, Limits(*read)


def status() -> str | None:
    """None when the kernel is usable; otherwise why not (built and loaded once per process)."""
    global _lib, _limits, _reason
    if _lib is not None:  # the common case, every forward: no lock
        return None
    with _lock:
        if _lib is None and _reason is None:
            try:
                _lib, _limits = _open(build())
            except (OSError, subprocess.SubprocessError, AttributeError, ValueError) as e:
                _reason = str(e) or type(e).__name__  # ValueError: a symbol it lacks
        return _reason


def limits() -> Limits:
    """The sizes the loaded kernel handles (raises RuntimeError when it is not available)."""
    if _limits is None and status() is not None:
        raise RuntimeError(f"the fused CPU kernel is not available: {status()}")
    return _limits


def call(name: str, args: Args) -> None:
    """Run ``lenet_forward``, ``lenet_backward`` or ``lenet_train_step`` on ``args``."""
    if _lib is None and status() is not None:  # built and loaded here on first use
        raise RuntimeError(f"the fused CPU kernel is not available: {status()}")
    args.abi, args.size = ABI, ctypes.sizeof(Args)
    code = getattr(_lib, name)(ctypes.byref(args))
    if code == 1:
        raise MemoryError(f"{name}: the fused CPU kernel ran out of memory")
    if code:
        raise RuntimeError(f"{name}: {_ERRORS.get(code, f'error {code}')}")
