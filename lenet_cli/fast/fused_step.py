"""A whole training step as one C call: forward, loss, backward and the optimizer's update.

Why: with fused.py's kernels under autograd, nearly half of a batch-64 step is per-step Python
around tiny tensors rather than the kernels' arithmetic: autograd's graph and its one node, the
loss as a handful of ops, ``zero_grad``, torch.optim's step (several times the cost of the
update it computes) and an allocation for every kept buffer. ``FusedStep`` runs
``lenet_train_step`` (kernels/whole_net.c) on buffers it keeps from step to step.

What stays torch's: the parameters, their ``.grad`` (the step's gradients, as after
``backward()``), and the optimizer with its state tensors, which the C update reads and writes
in place. So ``optimizer.state_dict()``, checkpoints, exact resume and the lr schedule (read
from the param group at every step) see no difference. The C update computes torch.optim's
fused formulas for the optimizers lenet builds: SGD (momentum, dampening, Nesterov, weight
decay, maximize), Adam and AdamW (no amsgrad), and the tutorial's manual SGD. Anything else
(RMSprop, Adadelta, amsgrad, hooks on the optimizer, a state torch has not made yet: the first
step of a stateful optimizer) gets its gradients from C and then torch's own
``optimizer.step()``. The choice depends only on the optimizer and its state, which a checkpoint
carries, so a resumed run takes the same path at every step as an uninterrupted one.

It runs where the C kernels train (``fused.FusedNet``: float32 on the CPU) and the step is the
plain one: fp32, no gradient scaler, not compiled, not data-parallel (DistributedDataParallel
averages gradients in autograd hooks), cross-entropy or MSE (both with label smoothing).
``why_not`` says why not, elsewhere ``train.train_step`` runs.
"""

from __future__ import annotations

import torch
from torch.optim import optimizer as torch_optimizer

from lenet_cli.fast import fused, kernel
from lenet_cli.optim import ManualSGD

LOSSES = {"cross-entropy": 0, "mse": 1}
GRADS_ONLY, SGD, ADAM, ADAMW = 0, 1, 2, 3


def why_not(net, optimizer, loss: str, *, precision: str, scaled: bool, compiled: bool,
            data_parallel: bool) -> str | None:  # fmt: skip
    """None when ``FusedStep`` can train ``net`` with ``optimizer``; else the reason."""
    if not isinstance(net, fused.FusedNet) or kernel.status() is not None:
        return "the C kernels do not run this model"
    if precision != "fp32" or scaled or compiled or data_parallel:
        return "mixed precision, a compiled model or data-parallel training"
    if loss not in LOSSES:
        return f"the {loss} loss"
    params = net._params()
    groups = optimizer.param_groups
    if (
        len(groups) != 1
        or len(groups[0]["params"]) != len(params)
        or any(p is not q for p, q in zip(groups[0]["params"], params, strict=True))
    ):
        return "an optimizer that is not over the network's own ten parameters"
    if not all(p.requires_grad and p.is_cpu and p.dtype is torch.float32 for p in params):
        return "parameters that are not trainable float32 CPU tensors"
    return None


def _update_kind(optimizer: torch.optim.Optimizer, group: dict) -> int:
    """What the C update computes for ``optimizer`` as it is now; GRADS_ONLY for torch's own."""
    if (
        len(optimizer.param_groups) != 1  # a group added since: torch steps them all
        or optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
        or getattr(torch_optimizer, "_global_optimizer_pre_hooks", None)
        or getattr(torch_optimizer, "_global_optimizer_post_hooks", None)
        or group.get("differentiable")
        or group.get("capturable")
    ):
        return GRADS_ONLY
    kind = type(optimizer)
    if kind in (ManualSGD, torch.optim.SGD):
        return SGD
    if kind in (torch.optim.Adam, torch.optim.AdamW) and not group.get("amsgrad"):
        decoupled = kind is torch.optim.AdamW or group.get("decoupled_weight_decay")
        return ADAMW if decoupled else ADAM
    return GRADS_ONLY


class FusedStep:
    """``step(x, y) -> (loss, hits)`` like ``train.train_step`` for a ``FusedNet`` (check
    ``why_not`` first): the batch's mean loss and its correct count, as Python numbers (the step
    is synchronous on the CPU; two tensors made and summed per step cost about 30 us)."""

    def __init__(self, net: fused.FusedNet, optimizer, loss: str, smoothing: float) -> None:
        self.net, self.optimizer = net, optimizer
        self.a = kernel.Args()
        self.a.loss, self.a.smoothing = LOSSES[loss], float(smoothing)
        self._point()

    def clip(self, norm: float | None = None, value: float | None = None) -> None:
        """Clip the gradients in the C call, between the backward and the update, as
        ``torch.nn.utils.clip_grad_norm_`` (``norm``: their global L2 norm at most this) and
        ``clip_grad_value_`` (``value``: each element into [-value, value]) do; None: off.
        torch's own update, where it follows the C call, sees the clipped gradients too."""
        self.a.clip_norm = float(norm or 0.0)
        self.a.clip_value = float(value or 0.0)

    def updates(self) -> bool:
        """Whether the C call also makes the optimizer's update (else torch's step follows it;
        the first step of a stateful optimizer is torch's either way)."""
        return _update_kind(self.optimizer, self.optimizer.param_groups[0]) != GRADS_ONLY

    def _point(self) -> None:
        """Point the struct at the parameters as they are now and at new gradient buffers laid
        out as they are, and forget everything sized or bound for the old ones."""
        self.params = self.net._params()
        self.ptrs = [p.data_ptr() for p in self.params]
        self.grads = [fused.grad_like(p, i) for i, p in enumerate(self.params)]
        self.a.prm[:] = self.ptrs
        self.a.grads[:] = [g.data_ptr() for g in self.grads]
        self.kept: list[torch.Tensor] = []
        self.kept_for: tuple = ()
        self.scores = torch.empty(0)
        self.bound_to: object = None  # the optimizer's state dict the C update is bound to
        self.bound_names: tuple = ()  # and the state it reads for each parameter
        self.state: list[torch.Tensor] = []  # its tensors, alive while their pointers are used
        self.batch: tuple = ()  # the shape, dtype and device of the batches the struct is set for

    def _buffers(self, shape: tuple[int, ...]) -> None:
        """Scores and kept buffers for batches of ``shape``, (re)made when it is new or larger;
        a smaller batch uses their first rows (each is [N, ...], images first)."""
        n, _, h, w = shape
        if self.kept_for and self.kept_for[1:] == (h, w) and n <= self.kept_for[0]:
            return
        specs = fused.kept_specs(shape, self.params)
        self.kept = [torch.empty(s, dtype=d) for s, d in specs]
        self.scores = torch.empty((n, self.params[8].shape[0]))
        self.kept_for = (n, h, w)
        a = self.a
        a.out1, a.idx1, a.out2, a.idx2, a.a1, a.a2 = (t.data_ptr() for t in self.kept)
        a.scores = self.scores.data_ptr()

    def _bind(self, kind: int) -> bool:
        """Point the struct at the optimizer's state tensors; False while torch has not made
        them (its first step) or they are not laid out as their parameters."""
        st = self.optimizer.state
        names: tuple[str, ...] = ()
        if kind in (ADAM, ADAMW):
            names = ("exp_avg", "exp_avg_sq")
        elif self.optimizer.param_groups[0].get("momentum", 0):  # SGD with momentum
            names = ("momentum_buffer",)
        if self.bound_to is st and self.bound_names == names:
            return True
        held, a = [], self.a
        a.state1[:] = a.state2[:] = a.steps[:] = [None] * 10
        for i, p in enumerate(self.params):
            s = st.get(p, {})
            tensors = [s.get(name) for name in names]
            if not all(_same_layout(t, p) for t in tensors):
                return False
            if kind in (ADAM, ADAMW):
                step = s.get("step")
                if not (isinstance(step, torch.Tensor) and step.dtype is torch.float32
                        and step.is_cpu and step.dim() == 0):  # fmt: skip
                    return False
                a.steps[i] = step.data_ptr()
                tensors.append(step)
            for j, t in enumerate(tensors[: len(names)]):
                (a.state1, a.state2)[j][i] = t.data_ptr()
            held += tensors
        self.state, self.bound_to, self.bound_names = held, st, names
        # what torch's lr_scheduler records when optimizer.step() runs (it warns at its first
        # step if the optimizer has not stepped)
        self.optimizer._opt_called = True
        return True

    def _shape(self, x: torch.Tensor, n: int) -> None:
        """Check images of a new shape or type once, and set the struct's sizes for batches of
        ``n`` of them."""
        reason = fused.unfit(x, self.params)
        if reason is not None:
            raise ValueError(f"FusedStep cannot train on these images: {reason}")
        shape = (n, *x.shape[1:])
        self._buffers(shape)
        fused.set_sizes(self.a, shape, self.params)
        self.a.images = x.shape[0]
        self.batch = (x.shape, x.dtype, x.is_cpu, n)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        """One step on the batch ``x`` [N,1,H,W] with labels ``y`` [N]."""
        return self.rows(x, y, None)

    def rows(
        self, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor | None
    ) -> tuple[float, int]:
        """One step on the batch ``images[index]``, ``labels[index]`` (all of them with
        ``index`` None), read where it is: nothing is gathered first."""
        total = images.shape[0]
        if labels.dtype is not torch.int64 or labels.shape != (total,):
            raise ValueError("FusedStep takes int64 labels [N] for images [N,1,H,W]")
        if index is not None and (
            index.dtype is not torch.int64 or index.dim() != 1 or not index.is_cpu
        ):
            raise ValueError("FusedStep takes the batch's rows as an int64 CPU index [B]")
        n = total if index is None else index.shape[0]
        if [p.data_ptr() for p in self.params] != self.ptrs:  # moved (`param.data = ...`)
            self._point()
        if (images.shape, images.dtype, images.is_cpu, n) != self.batch:
            self._shape(images, n)
        if not (images.is_contiguous() or images.is_contiguous(memory_format=torch.channels_last)):
            images = images.contiguous()  # one channel: either layout is the same [N,H,W] memory
        labels = labels.contiguous()
        index = None if index is None else index.contiguous()
        group, a = self.optimizer.param_groups[0], self.a
        kind = _update_kind(self.optimizer, group)
        if kind != GRADS_ONLY and not self._bind(kind):
            kind = GRADS_ONLY
        a.threads = max(1, min(torch.get_num_threads(), n))
        a.x, a.labels, a.opt = images.data_ptr(), labels.data_ptr(), kind
        a.rows = None if index is None else index.data_ptr()
        if kind != GRADS_ONLY:
            _hyperparameters(a, group, kind)
        for p, g in zip(self.params, self.grads, strict=True):
            if p.grad is not g:  # the step's gradients are the parameters' .grad, as torch's
                p.grad = g
        kernel.call("lenet_train_step", a)
        if kind == GRADS_ONLY:
            self.optimizer.step()
        return a.loss_mean, a.hits


def _same_layout(t, p: torch.Tensor) -> bool:
    return (
        isinstance(t, torch.Tensor)
        and t.dtype is torch.float32
        and t.is_cpu
        and t.shape == p.shape
        and t.stride() == p.stride()
    )


def _hyperparameters(a: kernel.Args, group: dict, kind: int) -> None:
    a.lr, a.weight_decay = float(group["lr"]), float(group.get("weight_decay", 0.0))
    a.maximize = bool(group.get("maximize", False))
    if kind == SGD:
        a.momentum = float(group.get("momentum", 0.0))
        a.dampening = float(group.get("dampening", 0.0))
        a.nesterov = bool(group.get("nesterov", False))
    else:
        a.beta1, a.beta2 = (float(b) for b in group["betas"])
        a.eps = float(group["eps"])
