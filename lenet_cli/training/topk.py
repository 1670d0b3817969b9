"""``--save-top-k K``: the best K epochs' checkpoints, kept as epoch-NNN.pt in the run directory.

The epochs kept are ranked by the metric the run follows (config/monitor.py: the one of
``--early-stop`` and best.pt), best first, an earlier epoch first on a tie. The list lives in
the run's counters (``RunState.top_k``), so it is in every checkpoint and a resumed run goes on
with it. The order of the writes keeps the directory consistent with the list whatever stops
the process: a newly kept epoch's file is written before last.pt records it, and a file that
dropped out is removed after last.pt no longer lists it (``prune`` removes any epoch-NNN.pt
the list does not name, so a file left by a crash in between goes at the next epoch).
"""

from __future__ import annotations

from typing import Any

from lenet_cli.config.monitor import rank_key
from lenet_cli.runs.metrics import RunState
from lenet_cli.runs.rundir import RunDir, epoch_file


def rank(state: RunState, row: dict[str, Any], metric: str, k: int | None) -> bool:
    """Put ``row``'s epoch into ``state.top_k`` (at most ``k``); True when it is kept.

    A partial epoch's entry (a run stopped mid-epoch) is replaced by the epoch's full row."""
    if k is None:
        return False
    entries = [e for e in state.top_k if e["epoch"] != row["epoch"]]
    entries.append({"epoch": row["epoch"], "step": row["step"], "value": row[metric]})
    entries.sort(key=lambda e: (rank_key(e["value"], metric), e["epoch"]))
    state.top_k = entries[:k]
    return any(e["epoch"] == row["epoch"] for e in state.top_k)


def save(rd: RunDir, epoch: int, payload: dict[str, Any]) -> None:
    rd.save(epoch_file(epoch), payload)


def prune(rd: RunDir, state: RunState, k: int | None) -> None:
    """Remove the epoch-NNN.pt files that ``state.top_k`` does not list (nothing without K)."""
    if k is None:
        return
    keep = {epoch_file(e["epoch"]) for e in state.top_k}
    for name in rd.epoch_files():
        if name not in keep:
            rd.remove(name)
