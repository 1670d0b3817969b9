"""Run directories: what a run writes, and reading it back.

- ``rundir.py``: the run directory's one writer (config.toml, env.json, metrics.jsonl,
  checkpoints); ``lock.py``: its lock, held while a process trains there; ``metricsfile.py``:
  the metrics files' columns, CSV text and the rows a resume keeps;
- ``checkpoint.py`` and ``payload.py``: save and load checkpoints, and the content checks of every
  field (shapes, finite weights, counters); ``resume.py``: the checks of what resuming reads
  besides the model (the whole config, the optimizer's state, run state, RNG states);
- ``metrics.py``: run counters and rows; ``reader.py``: run directories read back, class names;
- ``readback.py``: every file lenet reads back, read as user input (kinds, sizes, strict JSON,
  metrics.jsonl's one reader); ``weightsmeta.py``: a .safetensors file's metadata, checked;
- ``table.py``: the table of runs (``lenet runs``);
- ``given.py``: what a run of ``lenet_cli.train`` got from Python (data, a model), as recorded.

May import: the top-level modules and data/. Nothing above.
"""
