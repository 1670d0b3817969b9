"""Keep ``torch._dynamo`` unimported when nothing is compiled.

Why: ``import torch._dynamo`` costs more than half of what a 1-step ``lenet train`` costs beyond
``import torch`` (docs/benchmarks.md, start-up), and plain eager training never needs it.
``torch.optim`` imports it anyway, only to tell a compiler where not to look:
- ``Optimizer.add_param_group``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` are wrapped
  by ``torch._disable_dynamo``, which imports dynamo on the first call to mark the method as not
  compilable, then calls it;
- each optimizer's ``step`` is wrapped by ``_use_grad_for_differentiable``, which imports dynamo to
  call ``torch._dynamo.graph_break()`` (a no-op outside ``torch.compile``) around the step, run
  with grad mode set to the optimizer's ``differentiable`` default.
``without_dynamo(make)`` gives the first kind what its wrapper would cache after the import (the
method itself), then builds the optimizer with ``make()`` and gives it a ``step`` that does what
the second wrapper does outside a compiler: grad mode set, the step, grad mode restored, inside
torch's own step hooks (``Optimizer.profile_hook_step``: pre/post hooks, the profiler label).
The numbers are those of ``optimizer.step()`` (tests/training/test_startup.py).

Both wrappers are recognised by what they are (the code objects torch's decorators make), not by
name: a torch release that wraps differently is left alone and imports dynamo as before. Call it
only where nothing in the process compiles the optimizer (``lenet train --compile`` compiles only
the model and does not call this).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch.optim import Optimizer


def _mark_disabled_methods() -> None:
    """torch._disable_dynamo's wrappers on Optimizer: hand each the answer it caches."""
    import torch
    import torch._compile

    wrapper_code = getattr(torch._compile._disable_dynamo(lambda: None), "__code__", None)
    for method in vars(torch.optim.Optimizer).values():
        original = getattr(method, "__wrapped__", None)
        if getattr(method, "__code__", None) is wrapper_code and callable(original):
            setattr(original, "__dynamo_disable", original)  # the attribute the wrapper looks up


def _raw_step(optimizer) -> Callable | None:  # noqa: ANN001
    """The optimizer class's step under its _use_grad_for_differentiable wrapper, if found."""
    from torch.optim import optimizer as torch_optimizer

    use_grad = getattr(torch_optimizer, "_use_grad_for_differentiable", None)
    if use_grad is None:
        return None
    use_grad_code = use_grad(lambda self: None).__code__
    fn = type(optimizer).step
    while fn is not None:
        if getattr(fn, "__code__", None) is use_grad_code:
            return getattr(fn, "__wrapped__", None)
        fn = getattr(fn, "__wrapped__", None)
    return None


def without_dynamo(make: Callable[[], Optimizer]) -> Optimizer:
    """``make()``, an optimizer that runs without importing torch._dynamo where torch allows."""
    if "torch._dynamo" in sys.modules:
        return make()  # already paid for: nothing to save
    import torch

    _mark_disabled_methods()  # before make(): its add_param_group is one of them
    optimizer = make()
    raw = _raw_step(optimizer)
    if raw is None or "differentiable" not in optimizer.defaults:
        return optimizer  # another torch: its own step, which imports dynamo

    def step(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        before = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(self.defaults["differentiable"])
            return raw(self, *args, **kwargs)
        finally:
            torch.set_grad_enabled(before)

    optimizer.step = types.MethodType(torch.optim.Optimizer.profile_hook_step(step), optimizer)
    return optimizer
