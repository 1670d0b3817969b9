"""`lenet serve`: the drawing page and its JSON API on a local web server.

FastAPI, uvicorn and torch are imported inside the command body only (`lenet --help` stays
instant, and a missing `[serve]` extra is exit 14 naming it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lenet_cli import ui
from lenet_cli.cli.app import app
from lenet_cli.cli.use_cmds import WeightsOpt

LOOPBACK = "127.0.0.1"


@app.command("serve")
def serve_cmd(
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint or run directory (best.pt, else last.pt), or plain weights; "
            "by default the newest run in runs/.",
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. The default answers this machine only; another (e.g. "
            "0.0.0.0) opens the page to the network.",
        ),
    ] = LOOPBACK,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")
    ] = 8000,
    weights: WeightsOpt = None,
) -> None:
    """A web page to draw a digit and watch the network read it, and its JSON API (/docs)."""
    from lenet_cli.serve.runner import check_extra, is_loopback, listen, run, url

    check_extra()  # a missing extra is said before the model is read
    from lenet_cli.serve.service import Service
    from lenet_cli.serve.web import create_app

    service = Service.load(checkpoint, weights)
    if service.notice:
        ui.note(service.notice)
    web = create_app(service=service)
    sock = listen(host, port)
    if not is_loopback(host):
        ui.note(
            f"warning: --host {host} is not loopback: the page and its API are open to every "
            f"machine that can reach this one on port {sock.getsockname()[1]}"
        )
    info = service.info
    acc = info["test_accuracy"]
    said = f", test accuracy {acc:.2%}" if acc is not None else ""
    serving = f"serving {info['checkpoint']} ({info['arch']}{said}) at {url(sock)} (Ctrl-C stops)"
    signum = run(web, sock, announce=lambda: ui.note(serving))
    ui.note("stopped" + (f" by {_name(signum)}" if signum else ""))


def _name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name
