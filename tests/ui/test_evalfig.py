"""per_class.png: the y axis starts just below the worst class (docs/pictures.md) and the
overall-accuracy label covers no bar."""

from __future__ import annotations

import pytest

from lenet_cli.ui.evalfig import per_class_figure

ACC = [0.993, 0.991, 0.992, 0.979, 0.986, 0.985, 0.984, 0.975, 0.984, 0.982]


def _result(acc: list[float], overall: float) -> dict:
    per_class = [{"accuracy": a, "count": 1000} for a in acc]
    return {"arch": "lenet5", "data": "mnist", "split": "test", "count": 10_000,
            "accuracy": overall, "per_class": per_class}  # fmt: skip


@pytest.mark.parametrize(
    ("acc", "overall"),
    [(ACC, 0.9852), ([0.60, *ACC[1:]], 0.95), ([a - 0.5 for a in ACC], 0.49), ([0.0] * 10, 0.0)],
)
def test_per_class_axis_and_label(acc, overall):
    fig = per_class_figure(_result(acc, overall), [str(k) for k in range(10)])
    ax = fig.axes[0]
    worst = 100 * min(acc)
    low, high = ax.get_ylim()
    assert low < worst or worst == 0  # every bar shows
    assert low >= worst - max(1.0, 0.3 * (100 - worst)) - 1e-9, (low, worst)  # just below it
    assert high > 100  # room for the values written above the bars
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (label,) = [t for t in ax.texts if t.get_text().startswith("all classes")]
    box = label.get_window_extent(renderer)
    for bar in ax.patches:
        assert not box.overlaps(bar.get_window_extent(renderer)), label.get_text()
    import matplotlib.pyplot as plt

    plt.close(fig)
