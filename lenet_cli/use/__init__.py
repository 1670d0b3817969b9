"""Using a trained model: evaluate it, predict a picture, export it, read plain weights.

- ``evaluate.py``: loss, accuracy, per-class figures and the confusion matrix;
- ``predict.py``: a picture prepared as MNIST's digits were, and the network's answer;
- ``scan/``: what predict does first, as a document scanner would: the paper removed
  (``paper.py``), the ink told from it (``threshold.py``), the digit's own marks kept
  (``marks.py``; ruled paper's lines: ``lines.py``), the stroke brought to MNIST's width
  (``stroke.py``);
- ``export.py``: safetensors, ``torch.export`` (.pt2) and ONNX, verified against the checkpoint;
- ``weights.py``: one loader for a checkpoint, a run directory, a ``torch.save(state_dict)`` file
  or a .safetensors file;
- ``api.py``: ``lenet_cli.load``, ``evaluate``, ``predict``, ``export`` on models in memory.

May import: the top-level modules, data/, fast/ and runs/. Nothing above.
"""
