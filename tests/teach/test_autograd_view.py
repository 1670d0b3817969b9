"""`lenet autograd`: the graph of the tutorial's MSE loss."""

from __future__ import annotations

import json

import pytest
from conftest import check_png, check_terminal_text
from typer.testing import CliRunner

from lenet_cli.cli import app
from lenet_cli.teach.autograd_view import chain, loss_graph
from lenet_cli.teach.walkthrough import tutorial_step

runner = CliRunner()


def _leaves(node):
    if node.get("parameter"):
        return [node["tensor"]]
    return [name for n in node.get("next", []) for name in _leaves(n)]


def test_graph_reaches_every_parameter_and_matches_step():
    doc = loss_graph("tutorial", seed=0)
    assert doc["matches_model_forward"]
    names = sorted(_leaves(doc["graph"]))
    expected = [
        f"{layer}.{kind}"
        for layer in ("conv1", "conv2", "fc1", "fc2", "fc3")
        for kind in ("bias", "weight")
    ]
    assert names == sorted(expected)
    assert doc["loss"] == pytest.approx(tutorial_step(seed=0)["loss_before"], rel=1e-6)
    walk = chain(doc["graph"])
    assert walk[:3] == ["MseLossBackward0", "AddmmBackward0", "ReluBackward0"]
    assert walk[-1] == "AccumulateGrad" and "ConvolutionBackward0" in walk


def test_autograd_cli_tree_png_json(tmp_path):
    result = runner.invoke(app, ["autograd"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "MseLossBackward0" in result.stdout and "fc1.weight [120, 576]" in result.stdout
    check_terminal_text(result.stdout)
    png = tmp_path / "graph.png"
    doc_run = runner.invoke(app, ["autograd", "--json", "--out", str(png)])
    assert doc_run.exit_code == 0, doc_run.output
    doc = json.loads(doc_run.stdout)
    assert doc["graph"]["node"] == "MseLossBackward0" and doc["png"] == str(png)
    check_png(png, min_size=(700, 600))
    bad = runner.invoke(app, ["autograd", "--out", str(tmp_path / "graph.jpg")])
    assert bad.exit_code == 2 and "PNG" in bad.stderr


def test_autograd_other_archs():
    for arch in ("lenet5", "classic"):
        doc = loss_graph(arch)
        assert doc["matches_model_forward"], arch
        assert len(_leaves(doc["graph"])) == 10
