"""Arrays given in Python (lenet_cli.train(data=(images, labels))): tensors that hold no
values of their own are refused as data errors, before anything is written."""

from __future__ import annotations

import pytest
import torch

import lenet_cli as lenet
from lenet_cli.errors import DataError


@pytest.mark.parametrize(
    "make, said",
    [
        (lambda x, y: (torch.empty(x.shape, device="meta"), y), "images are a tensor on the meta"),
        (lambda x, y: (x, torch.empty(y.shape, dtype=torch.long, device="meta")), "labels are"),
        (lambda x, y: (x.to_sparse(), y), "images are a tensor of layout torch.sparse_coo"),
    ],
)
def test_a_meta_or_sparse_tensor_is_a_data_error(tmp_path, make, said):
    x, y = torch.rand(40, 28, 28), torch.randint(0, 10, (40,))
    with pytest.raises(DataError, match=said) as caught:
        lenet.train(data=make(x, y), epochs=1, progress="none", out=tmp_path)
    assert caught.value.exit_code == 5 and "a dense tensor" in str(caught.value)
    assert list(tmp_path.iterdir()) == []
