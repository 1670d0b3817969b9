"""Rich rendering, and nothing else. No torch at import time.

stdout carries data (tables, JSON); stderr carries notes, progress and errors. Rich drops colour
and animation when the stream is not a terminal, and honours NO_COLOR. One module per family of
commands; this package re-exports them so callers write ``ui.render_...``.
"""

from lenet_cli.ui.autograd import autograd_png, render_autograd
from lenet_cli.ui.bench import render_bench
from lenet_cli.ui.console import err, error_line, fmt_int, note, out, print_json
from lenet_cli.ui.data import download_progress, render_data_list, render_digits, render_verify
from lenet_cli.ui.evalfig import class_legend, evaluation_pngs
from lenet_cli.ui.export import render_export
from lenet_cli.ui.filterview import filters_png, render_filters
from lenet_cli.ui.model import render_forward, render_model_facts, render_step
from lenet_cli.ui.netfig import activations_png
from lenet_cli.ui.netview import render_activations
from lenet_cli.ui.plot import plot_png, render_plot
from lenet_cli.ui.prediction import (
    preview_targets,
    render_steps,
    render_warnings,
    saved_note,
    steps_png,
)
from lenet_cli.ui.runs import render_runs, render_runs_diff
from lenet_cli.ui.sweep import SweepProgress, render_sweep, worker_notice
from lenet_cli.ui.train import (
    TrainProgress,
    epoch_line,
    progress_mode,
    render_config,
    render_evaluation,
    render_prediction,
    render_train_summary,
)
from lenet_cli.ui.tutorial import render_tutorial_step

__all__ = [
    "err",
    "error_line",
    "fmt_int",
    "note",
    "out",
    "print_json",
    "render_model_facts",
    "render_forward",
    "render_step",
    "render_data_list",
    "render_verify",
    "render_digits",
    "download_progress",
    "progress_mode",
    "epoch_line",
    "TrainProgress",
    "render_train_summary",
    "render_config",
    "render_evaluation",
    "render_prediction",
    "render_bench",
    "render_plot",
    "render_steps",
    "render_warnings",
    "steps_png",
    "preview_targets",
    "saved_note",
    "plot_png",
    "render_export",
    "render_runs",
    "render_runs_diff",
    "SweepProgress",
    "render_sweep",
    "worker_notice",
    "evaluation_pngs",
    "class_legend",
    "activations_png",
    "render_activations",
    "filters_png",
    "render_filters",
    "autograd_png",
    "render_autograd",
    "render_tutorial_step",
]
