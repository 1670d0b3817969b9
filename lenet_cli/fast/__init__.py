"""The optional CPU accelerator: lenet trains and evaluates without it, only slower.

- ``kernel.py``: builds ``kernels/whole_net.c`` with the system's C compiler once, checks the
  cached library's SHA-256 and the struct's version and size before every load;
- ``fused.py``: ``FusedNet``, the tutorial's Net computed by the C kernels, registered with PyTorch
  as one op (export, compile and tracing still see it);
- ``fused_step.py``: the fused step, one C call per training step (forward, loss, backward and
  torch.optim's update on torch's own state);
- ``speed.py``: which of these a run uses (``--fused``, ``--compile``, ``--channels-last``);
- ``threads.py``: ``--threads auto``; ``cpu.py``: facts about the processor.

May import: the top-level modules (model, optim, config, errors, files). Nothing above.
"""
