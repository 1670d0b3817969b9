"""MLflow logging of a training run (``--mlflow URI``): a listener on the training engine's
events, as tblog.py is for TensorBoard.

Where: a tracking URI, ``sqlite:///FILE.db``, a ``file:DIR`` store (MLflow 3 opens one only with
MLFLOW_ALLOW_FILE_STORE=true set; lenet says so rather than set it) or an ``http(s)://``
tracking server; ``local`` is ``sqlite:///mlflow.db`` in the working directory (MLflow's own
default).
What, into the experiment "lenet", in one MLflow run named as lenet's run directory and tagged
with its path (``lenet.run_dir``): the resolved config as params; each epoch's row of
metrics.jsonl as metrics (fractions, as every program-facing output; step = the epoch); at the
end config.toml and best.pt as artifacts (with a SQLite store, in mlruns/ beside its file) and
the run's status (FINISHED, KILLED for a signal, FAILED). ``--resume`` finds the MLflow run
again by that tag and goes on in it; an option the resume changed is recorded as the tag
``lenet.resumed.KEY`` (MLflow's params never change).

The client is MLflow's own (``MlflowClient``, no global state: two runs in one process each
have theirs), imported here only, when asked for: it needs the extra ``lenet-cli[mlflow]``. A
tracking server that cannot be reached at the start is exit 16 before any data is loaded; one
that fails later stops the logging with a notice, and the training goes on.
"""

from __future__ import annotations

import contextlib
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lenet_cli.config.rules import MLFLOW_URI
from lenet_cli.errors import MissingExtraError, ServiceError, UsageError
from lenet_cli.interrupts import TrainingInterrupted
from lenet_cli.runs.metricsfile import COLUMNS

LOCAL = "sqlite:///mlflow.db"
EXPERIMENT = "lenet"
RUN_TAG = "lenet.run_dir"
_METRICS = tuple(c for c in COLUMNS if c not in ("epoch", "step", "partial", "time"))


def tracking_uri(value: str) -> str:
    """The tracking URI ``--mlflow`` names (``local``: sqlite:///mlflow.db), or a UsageError."""
    if MLFLOW_URI.test(value):
        return LOCAL if value == "local" else value
    raise UsageError(
        f"--mlflow {value!r} is not a tracking URI lenet writes to",
        hint="use sqlite:///FILE.db, file:DIR, http://HOST:PORT, or local (sqlite:///mlflow.db)",
    )


def client_class():
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MissingExtraError(
            "--mlflow needs the mlflow package, which is not installed",
            hint="pip install 'lenet-cli[mlflow]'",
        ) from None
    return MlflowClient


def check_mlflow(value: str) -> str:
    """Before anything runs: the URI is one lenet writes to, the extra is installed, a
    tracking server answers. Returns the URI."""
    uri = tracking_uri(value)
    client_class()
    if uri.startswith("http"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5):
                pass
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise ServiceError(
                f"the MLflow tracking server at {uri} does not answer ({reason})",
                hint="start it (mlflow server --port PORT), or log to a file: --mlflow local",
            ) from None
    return uri


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's INFO lines off stderr (lenet's messages are its own) while the block runs."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _artifacts_beside(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: mlruns/ beside a SQLite store (MLflow's
    default is ./mlruns in whatever the working directory is); None: the store's own default."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlruns").as_uri()


def _open_sqlite(uri: str) -> None:
    """A SQLite store's file opened and read once before MLflow opens it: MLflow retries an
    engine it cannot create for about 100 s, logging a warning each time, so a file that cannot
    be opened (a read-only or missing folder) or is not a database is said at once."""
    import sqlite3

    path = uri.removeprefix("sqlite:///").partition("?")[0] if uri.startswith("sqlite:///") else ""
    if path in ("", ":memory:"):
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # as MLflow does
        with contextlib.closing(sqlite3.connect(path, timeout=5)) as db:
            db.execute("PRAGMA schema_version").fetchone()
    except (OSError, sqlite3.Error) as e:
        raise RuntimeError(f"({type(e).__name__}) {e}") from None


def _param(value: Any) -> str:
    return str(value)[:6000]  # MLflow's longest param value


class MlflowLog:
    """Call it with each engine event; ``close(status)`` logs the artifacts and ends the run."""

    def __init__(
        self, uri: str, run_dir: Path, config: dict[str, Any], notice: Callable[[str], None]
    ) -> None:
        self.client = client_class()(tracking_uri=uri)
        self.uri, self.run_dir, self.notice = uri, Path(run_dir), notice
        self.failed = False
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            exp_id = self.client.create_experiment(EXPERIMENT, _artifacts_beside(uri))
        else:
            exp_id = exp.experiment_id
        where = str(self.run_dir.resolve())
        found = self._find(exp_id, where)
        if found is None:
            tags = {RUN_TAG: where, "mlflow.source.name": "lenet train"}
            found = self.client.create_run(exp_id, tags=tags, run_name=self.run_dir.name)
        else:
            self.client.update_run(found.info.run_id, status="RUNNING")
        self.run_id = found.info.run_id
        self._params(found.data.params, config)

    def _find(self, exp_id: str, where: str):
        """The MLflow run of this run directory (a resumed run), or None."""
        if "'" in where:  # not expressible in a search filter: a new MLflow run
            return None
        runs = self.client.search_runs(
            [exp_id],
            filter_string=f"tags.`{RUN_TAG}` = '{where}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0] if runs else None

    def _params(self, logged: dict[str, str], config: dict[str, Any]) -> None:
        from mlflow.entities import Param, RunTag

        values = {k: _param(v) for k, v in config.items() if v is not None}
        params = [Param(k, v) for k, v in values.items() if k not in logged]
        tags = [RunTag(f"lenet.resumed.{k}", v) for k, v in values.items() if logged.get(k, v) != v]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        if tags:
            self.client.log_batch(self.run_id, tags=tags)

    def _safely(self, what: str, call: Callable[[], Any]) -> None:
        if self.failed:
            return
        try:
            call()
        except Exception as e:  # MlflowException, requests' errors: the store went away
            self.failed = True
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            self.notice(
                f"MLflow logging to {self.uri} stopped ({what}: {first}); the training goes on"
            )

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") != "epoch_end":
            return
        from mlflow.entities import Metric

        row = event["row"]
        stamp = int(time.time() * 1000)
        metrics = [
            Metric(k, float(row[k]), stamp, row["epoch"])
            for k in _METRICS
            if row.get(k) is not None
        ]
        self._safely("metrics", lambda: self.client.log_batch(self.run_id, metrics=metrics))

    def close(self, status: str) -> None:
        for name in ("config.toml", "best.pt"):
            path = self.run_dir / name
            if path.is_file():
                self._safely(name, lambda p=path: self.client.log_artifact(self.run_id, str(p)))
        self._safely("the end", lambda: self.client.set_terminated(self.run_id, status))


@contextlib.contextmanager
def mlflow_log(cfg, run_dir: Path, notice: Callable[[str], None]) -> Iterator[MlflowLog | None]:
    """An MlflowLog for the run (None without --mlflow), ended with the run's status."""
    if cfg.mlflow is None:
        yield None
        return
    uri = tracking_uri(cfg.mlflow)
    try:
        _open_sqlite(uri)
        with _quiet():  # MLflow logs "Updating database tables" when it makes a store
            log = MlflowLog(uri, run_dir, cfg.to_dict(), notice)
    except Exception as e:  # MlflowException, SQLAlchemy's, OSError: a store it cannot open
        if "MLFLOW_ALLOW_FILE_STORE" in str(e):  # MLflow 3 keeps file stores behind a switch
            raise UsageError(
                f"MLflow refuses the file store {uri} unless MLFLOW_ALLOW_FILE_STORE=true is set",
                hint="set it (export MLFLOW_ALLOW_FILE_STORE=true), or use a database: "
                "--mlflow local (sqlite:///mlflow.db)",
            ) from None
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ServiceError(
            f"cannot log to MLflow at {uri}: {first}",
            hint="check the URI and that its file or server is writable; nothing was trained",
        ) from None
    status = "FINISHED"
    try:
        yield log
    except (TrainingInterrupted, KeyboardInterrupt):
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        log.close(status)
