"""Beyond one run: hyper-parameter sweeps and several processes.

- ``space.py``: a sweep's search space; ``study.py``: an Optuna study's storage and rows;
- ``sweep.py``: the sweep's workers and trials; ``launch.py``: ``lenet train --nproc N``'s
  launcher (standard library only: the ranks import torch, the launcher does not).

May import: every folder below ui/ and cli/.
"""
