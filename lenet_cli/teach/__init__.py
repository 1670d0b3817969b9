"""The tutorial, step by step: lenet's first purpose.

- ``walkthrough.py``: the tutorial's steps 3-8 on one net (backward, loss, the update by hand and
  by torch.optim); ``tutorial.py`` with ``texts/tutorial.toml``: steps 1-9 with explanations;
- ``summary.py``: the network's parameters, shapes and the shape arithmetic as plain data;
- ``autograd_view.py``: the graph from ``loss.grad_fn`` down to the parameters;
- ``activations.py`` and ``filters.py``: every layer's output for one digit, the conv kernels.

May import: the top-level modules, data/, fast/, runs/ and use/ (a digit is prepared as predict
prepares it). Nothing above.
"""
