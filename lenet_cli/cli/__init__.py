"""The `lenet` command line. Importing this package must not import torch (help stays instant)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

try:  # a Ctrl-C while the command modules import: one line and exit 130, no traceback
    from lenet_cli.cli import (
        bench_cmds,  # noqa: F401  (registers `lenet bench`)
        export_cmds,  # noqa: F401  (registers `lenet export`)
        lrfind_cmds,  # noqa: F401  (registers `lenet lr-find`)
        model_cmds,  # noqa: F401  (registers its commands)
        serve_cmds,  # noqa: F401  (registers `lenet serve`)
        sweep_cmds,  # noqa: F401  (registers `lenet sweep`)
        train_cmds,  # noqa: F401  (registers its commands)
        tutorial_cmds,  # noqa: F401  (registers `lenet tutorial`)
        use_cmds,  # noqa: F401  (registers its commands)
        viz_cmds,  # noqa: F401  (registers the picture commands)
    )
    from lenet_cli.cli.app import app
    from lenet_cli.cli.data_cmds import data_app
    from lenet_cli.cli.runs_cmds import runs_app
    from lenet_cli.scale.launch import RANK_EXIT_DIR_ENV, interrupted_while_starting
except KeyboardInterrupt:
    from lenet_cli.scale.launch import interrupted_while_starting

    interrupted_while_starting()

# Sub-apps and further command modules register here, one line each.
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")


def main() -> None:
    try:
        try:
            from lenet_cli.cli.streams import guard_streams
            from lenet_cli.interrupts import sigint_outside_imports

            guard_streams()  # a closed stdout fails the command; a closed stderr is only quiet
            sigint_outside_imports()  # torch's imports and pydantic can swallow a Ctrl-C
            app(prog_name="lenet")
        except SystemExit as e:
            if _typer_took_a_ctrl_c(e):
                raise KeyboardInterrupt from None
            raise
    except KeyboardInterrupt:  # during set-up, while Typer builds the command, or in its code
        interrupted_while_starting()
    except SystemExit as e:  # how Typer always ends
        _leave_group(e)
        raise


def _typer_took_a_ctrl_c(e: SystemExit) -> bool:
    """Typer ends a KeyboardInterrupt raised in its own code (outside the group's handlers in
    app.py: as it enters the command's context, say) with a bare exit 130 and nothing said.
    It raises its Exit(130) from the KeyboardInterrupt; the group's handlers raise theirs from
    None, having said the line."""
    return isinstance(getattr(e.__context__, "__cause__", None), KeyboardInterrupt)


def _leave_group(e: SystemExit) -> None:
    """A data-parallel rank ends here: its exit code told to `lenet train --nproc` (which
    started it through torchrun, whose own code is 1 whatever failed), then, once it joined a
    process group, an exit without finalizing the interpreter (distributed.leave)."""
    code = e.code if e.code is None or isinstance(e.code, int) else 1
    tell = os.environ.get(RANK_EXIT_DIR_ENV)
    if tell and os.environ.get("RANK", "").isdigit():
        try:
            (Path(tell) / f"rank-{os.environ['RANK']}").write_text(f"{code or 0}\n")
        except OSError:  # the launcher falls back to torchrun's code
            pass
    module = sys.modules.get("lenet_cli.training.distributed")  # imported only by a rank's `train`
    if module is None or not module.joined:
        return
    if code != e.code:  # a message as the exit "code": said, as SystemExit would
        sys.stderr.write(f"{e.code}\n")
    module.leave(code or 0)


__all__ = ["app", "main"]
