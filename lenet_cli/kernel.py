"""The C kernel of the whole network (``kernels/whole_net.c``): built, verified, loaded, called.

Layer 2; imports torch only for its OpenMP runtime, prints nothing. ``fused.py`` registers it
as PyTorch ops.

Build: compiled on first use with the system C compiler (``$CC``, else ``cc``) into the user
cache (``$LENET_KERNEL_DIR``, else ``$XDG_CACHE_HOME/lenet/kernels``), named by a hash of the
source, the compiler, the flags and this CPU's feature flags (it is built with
``-march=native``). The SHA-256 of the built file is recorded beside it, and checked before
every ``dlopen``: a truncated, corrupted or replaced file is rebuilt, never mapped (a
truncated shared object kills the process with SIGBUS on first use).

Load: after torch, so that its OpenMP calls run on PyTorch's own threads (the same libgomp).
The interface is one struct, ``Args`` here and ``lenet_args`` in C; the library reports its
version and the struct's size, and a mismatch makes the kernel unavailable (``status()`` says
why, and the commands use PyTorch's ops), never a call with a wrong layout.
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

import torch  # noqa: F401  (loaded first: the kernel must share torch's libgomp)

from lenet_cli import cpu

SOURCE = Path(__file__).with_name("kernels") / "whole_net.c"
FLAGS = ("-O3", "-march=native", "-fno-trapping-math", "-fopenmp", "-shared", "-fPIC")
ABI = 1  # LENET_ABI in the C file; bump both with any change of the struct
MAX_SIDE, MAX_CHANNELS, MAX_K2 = 64, 16, 15  # the C file's MAXS, MAXCIN and MAXK
_ERRORS = {
    2: "interface mismatch (struct version or size)",
    3: "sizes the kernel does not handle",
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
    ]


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
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
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".build-", suffix=".so")
    os.close(fd)
    try:
        done = subprocess.run(
            [cc, *FLAGS, "-o", tmp, str(SOURCE)], capture_output=True, text=True, timeout=120
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
    for part in (SOURCE.read_bytes(), cc, version.stdout, " ".join(FLAGS), cpu.flags()):
        key.update(part if isinstance(part, bytes) else part.encode())
    target = kernel_dir() / f"{SOURCE.stem}-{key.hexdigest()[:16]}.so"
    if not _verified(target):  # missing, or not the file that was built: build it again
        _compile(cc, target)
        if not _verified(target):
            raise OSError(f"the kernel built into {target} does not match its recorded hash")
    return target


def _open(path: Path) -> ctypes.CDLL:
    """Load the library and check that it speaks this module's interface."""
    lib = ctypes.CDLL(str(path))
    lib.lenet_abi.restype = lib.lenet_args_size.restype = ctypes.c_int
    abi, size = lib.lenet_abi(), lib.lenet_args_size()
    if (abi, size) != (ABI, ctypes.sizeof(Args)):
        raise OSError(
            f"kernel interface {abi} ({size} bytes) does not match lenet's "
            f"{ABI} ({ctypes.sizeof(Args)} bytes)"
        )
    for name in ("lenet_forward", "lenet_backward"):
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = [ctypes.POINTER(Args)], ctypes.c_int
    return lib


def status() -> str | None:
    """None when the kernel is usable; otherwise why not (built and loaded once per process)."""
    global _lib, _reason
    if _lib is not None:  # the common case, every forward: no lock
        return None
    with _lock:
        if _lib is None and _reason is None:
            try:
                _lib = _open(build())
            except (OSError, subprocess.SubprocessError, AttributeError) as e:
                _reason = str(e) or type(e).__name__
        return _reason


def _call(name: str, args: Args) -> None:
    """Run ``lenet_forward`` or ``lenet_backward`` on ``args`` (after ``status()`` is None)."""
    if _lib is None:
        raise RuntimeError(f"the fused CPU kernel is not available: {status()}")
    args.abi, args.size = ABI, ctypes.sizeof(Args)
    code = getattr(_lib, name)(ctypes.byref(args))
    if code == 1:
        raise MemoryError(f"{name}: the fused CPU kernel ran out of memory")
    if code:
        raise RuntimeError(f"{name}: {_ERRORS.get(code, f'error {code}')}")


def unfit(x: torch.Tensor, params) -> str | None:
    """Why the kernel cannot run Net's ten parameters (conv1, conv2, fc1, fc2, fc3; weight then
    bias) on images ``x``; None when it can. The C side checks the sizes again."""
    dims = (4, 1, 4, 1, 2, 1, 2, 1, 2, 1)
    if len(params) != 10 or any(p.dim() != d for p, d in zip(params, dims, strict=True)):
        return "not the ten parameters of Net"
    if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in (x, *params)):
        return "float32 CPU tensors only"
    w1, b1, w2, b2, f1, g1, f2, g2, f3, g3 = params
    if x.dim() != 4 or x.shape[0] < 1 or x.shape[1] != 1 or w1.shape[1] != 1:
        return "a batch of one-channel images [N,1,H,W] only"
    (c1, _, k1, k1w), (c2, cin2, k2, k2w) = w1.shape, w2.shape
    h, w = x.shape[2], x.shape[3]
    h1, w1_ = (h - k1 + 1) // 2, (w - k1 + 1) // 2
    f = 16 * ((h1 - k2 + 1) // 2) * ((w1_ - k2 + 1) // 2)
    if not (k1 == k1w and k2 == k2w and c2 == 16 and cin2 == c1 <= MAX_CHANNELS and k2 <= MAX_K2):
        return "conv layers other than Net's (square kernels, 16 channels out of conv2)"
    if not (k1 + 1 <= min(h, w) and max(h, w) <= MAX_SIDE and k2 + 1 <= min(h1, w1_) <= 16):
        return f"{h}x{w} images (the kernel's buffers hold up to {MAX_SIDE}x{MAX_SIDE})"
    if (b1.shape[0], b2.shape[0], g1.shape[0], g2.shape[0], g3.shape[0]) != (
        c1,
        16,
        f1.shape[0],
        f2.shape[0],
        f3.shape[0],
    ) or (f1.shape[1], f2.shape[1], f3.shape[1]) != (f, f1.shape[0], f2.shape[0]):
        return f"dense layers that do not follow conv2's {f} outputs"
    if not all(p.is_contiguous() or p.is_contiguous(memory_format=torch.channels_last)
               for p in (w1, w2)):  # fmt: skip
        return "conv weights that are neither contiguous nor channels_last"
    return None


def kept_specs(x_shape, params) -> list[tuple[tuple[int, ...], torch.dtype]]:
    """(shape, dtype) of what the forward keeps for the backward, for images of ``x_shape`` and
    Net's ten parameters: both blocks' outputs and argmaxes, the two hidden layers' activations
    (padded to whole 16-lane vectors)."""
    n, _, h, w = x_shape
    c1, k1, k2 = params[0].shape[0], params[0].shape[-1], params[2].shape[-1]
    h1, w1 = (h - k1 + 1) // 2, (w - k1 + 1) // 2
    block1, block2 = (n, c1, h1, w1), (n, 16 * ((h1 - k2 + 1) // 2) * ((w1 - k2 + 1) // 2))
    hidden1, hidden2 = (
        (n, _whole_vectors(params[4].shape[0])),
        (n, _whole_vectors(params[6].shape[0])),
    )
    f32, u8 = torch.float32, torch.uint8
    return [(block1, f32), (block1, u8), (block2, f32), (block2, u8), (hidden1, f32),
            (hidden2, f32)]  # fmt: skip


def _whole_vectors(n: int) -> int:
    return -(-n // 16) * 16


def _args(x: torch.Tensor, params) -> tuple[Args, list[torch.Tensor]]:
    """The struct for images ``x`` [N,1,H,W] and Net's ten parameters (conv1, conv2, fc1, fc2,
    fc3; weight then bias), and the tensors it points into (alive until the call returns)."""
    reason = unfit(x, params)
    if reason is not None:
        raise ValueError(f"the fused CPU kernel cannot run this: {reason}")
    n, _, h, w = x.shape
    x3 = x.reshape(n, h, w).contiguous()  # one channel: a view for NCHW and channels_last alike
    # the conv weights as they are (the kernel reads them at their strides), the rest contiguous
    held = [x3, *(p if i in (0, 2) else p.contiguous() for i, p in enumerate(params))]
    a = Args(n=n, h=h, w=w, c1=params[0].shape[0], k1=params[0].shape[-1], k2=params[2].shape[-1])
    a.o1, a.o2, a.o3 = params[4].shape[0], params[6].shape[0], params[8].shape[0]
    a.threads = max(1, min(torch.get_num_threads(), n))
    a.s1[:], a.s2[:] = params[0].stride(), params[2].stride()
    a.x = x3.data_ptr()
    a.prm[:] = [p.data_ptr() for p in held[1:]]
    return a, held


def forward(x: torch.Tensor, params, keep: bool) -> list[torch.Tensor]:
    """[scores, *kept]: Net's scores for ``x``, and with ``keep`` what ``backward`` needs
    (else six empty tensors)."""
    a, held = _args(x, params)
    scores = torch.empty((x.shape[0], a.o3))
    specs = kept_specs(x.shape, params)
    kept = [torch.empty(shape if keep else (0,), dtype=dtype) for shape, dtype in specs]
    a.scores = scores.data_ptr()
    if keep:
        a.out1, a.idx1, a.out2, a.idx2, a.a1, a.a2 = (t.data_ptr() for t in kept)
    _call("lenet_forward", a)
    return [scores, *kept]


def grad_like(p: torch.Tensor, i: int) -> torch.Tensor:
    """An empty gradient for parameter ``i``: the conv weights' at their strides (as autograd
    would lay them out), the others contiguous (as the kernel writes them)."""
    return torch.empty_strided(p.shape, p.stride()) if i in (0, 2) else torch.empty(p.shape)


def backward(x: torch.Tensor, params, gscores: torch.Tensor, kept) -> list[torch.Tensor]:
    """The ten parameters' gradients from dLoss/dscores and what ``forward`` kept."""
    a, held = _args(x, params)
    gs = gscores.contiguous()
    grads = [grad_like(p, i) for i, p in enumerate(params)]
    got = [(tuple(t.shape), t.dtype) for t in kept]
    if (
        gs.shape != (x.shape[0], a.o3)
        or gs.dtype != torch.float32
        or got != kept_specs(x.shape, params)
        or not all(t.is_contiguous() for t in kept)
    ):
        raise ValueError("lenet_backward needs the scores' gradient and what the forward kept")
    a.gscores = gs.data_ptr()
    a.out1, a.idx1, a.out2, a.idx2, a.a1, a.a2 = (t.data_ptr() for t in kept)
    a.grads[:] = [g.data_ptr() for g in grads]
    _call("lenet_backward", a)
    return grads
