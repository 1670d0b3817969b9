"""Training: the loop and what runs beside it.

- ``loop.py``: ``train`` (the run built, then each epoch yielded by ``train_epochs``);
  ``session.py``: a session's record around the loop (config.toml, env.json, the start event,
  --restore-best, the summary);
- ``run.py``: a ``Run`` (everything a checkpoint carries); ``splits.py``: its data splits on
  the device; ``step.py``: the training step, chosen once: the fused step where it applies, else
  ``train_step``;
- ``epoch.py``: running sums and NaN checks; ``plan.py``: what ``train`` is asked (defaults <
  file < flags, the run directory, resume rules);
- ``ema.py``: ``--ema``, the weights' moving average; ``topk.py``: ``--save-top-k``'s
  epoch-NNN.pt checkpoints; ``lrfind.py``: ``lenet lr-find``, the learning-rate range test;
- ``tblog.py``: TensorBoard logging; ``mlflowlog.py``: ``--mlflow`` logging (both listeners on
  the loop's events); ``distributed.py``: what a data-parallel rank does
  differently; ``bench.py``: ``lenet bench`` (each of its cells measured by
  ``bench_cell.py``);
- ``api.py``: ``lenet_cli.train`` from Python (given data and model, the process left as
  found); ``keywords.py``: its keywords checked as flags, ``model=`` tried on a batch;
  ``callbacks.py``: its callbacks, hooked to the loop's events.

May import: the top-level modules, data/, fast/, runs/, use/ and teach/. Nothing above.
"""
