"""The data: MNIST-family IDX data as in-memory tensors, offline first.

May import: torch, numpy, the standard library and the top-level modules; never prints (progress
goes to ``on_event`` / ``on_progress`` callbacks). Public API:

- ``load_dataset(name, split, ...) -> Dataset``; ``split_validation``; ``batches``, ``batch_rows``
- ``read_idx_images`` / ``read_idx_labels``: validated IDX reading
- ``find_source`` / ``download`` / ``verify`` / ``import_source`` / ``list_sources``
- ``arrays``: images and labels given in Python (``lenet_cli.train(data=...)``), checked
"""

from lenet_cli.data.fetch import download
from lenet_cli.data.idx import read_idx_images, read_idx_labels, read_idx_pair
from lenet_cli.data.load import load_dataset, resolve_source
from lenet_cli.data.sources import SOURCES, SPECS, Located, cache_root, find_source, locate
from lenet_cli.data.tensors import (
    Dataset,
    batch_rows,
    batches,
    split_validation,
    to_model_input,
)
from lenet_cli.data.verify import import_source, list_sources, verify

__all__ = [
    "SOURCES",
    "SPECS",
    "Dataset",
    "Located",
    "batch_rows",
    "batches",
    "cache_root",
    "download",
    "find_source",
    "import_source",
    "list_sources",
    "load_dataset",
    "locate",
    "read_idx_images",
    "read_idx_labels",
    "read_idx_pair",
    "resolve_source",
    "split_validation",
    "to_model_input",
    "verify",
]
