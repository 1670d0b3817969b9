"""The training config, and the choices and rules that flags and config files share.

Standard library only (tomli on Python 3.10). ``choices.py`` holds the choices an option may
take and the panels of `lenet train --help`; ``fields.py`` declares each ``TrainConfig`` field's
type, default, help and rule once: ``lenet train``'s flags are generated from it, config files
and checkpoints are checked against it, and the other commands check their numbers with the same
rules (``rules.py``). ``toml.py`` resolves built-in defaults < ``--config FILE`` < flags.
``monitor.py``: the metric a run follows (``--early-stop-metric``) and options that cannot work
together.

May import: errors.py only.
"""

from lenet_cli.config.choices import (
    ARCHES,
    DATA_NAMES,
    GENERAL,
    LOSSES,
    OPTIMIZERS,
    PANELS,
    PRECISIONS,
    PROGRESS_MODES,
    SCHEDULERS,
    Arch,
    DataName,
    LossName,
    OptimizerName,
    Precision,
    ProgressMode,
    SchedulerName,
    opt,
)
from lenet_cli.config.fields import FIELDS, HINTS, RULES, TrainConfig, flag_name
from lenet_cli.config.rules import (
    AT_LEAST_1,
    FLOAT32_MAX,
    FRACTION,
    NAME_MAX,
    NON_NEGATIVE,
    PATH_TEXT,
    POSITIVE,
    RUN_NAME,
    SEED,
    SEED_MAX,
    THREADS,
    Range,
    Rule,
    check_value,
)
from lenet_cli.config.toml import (
    Resolved,
    load_toml,
    read_toml,
    resolve,
    to_toml,
    tomllib,
    validate,
)

__all__ = [
    "ARCHES", "AT_LEAST_1", "DATA_NAMES", "FIELDS", "FLOAT32_MAX", "FRACTION", "GENERAL", "HINTS",
    "LOSSES", "NAME_MAX", "NON_NEGATIVE", "OPTIMIZERS", "PANELS", "PATH_TEXT", "POSITIVE",
    "PRECISIONS", "PROGRESS_MODES", "RULES", "RUN_NAME", "SCHEDULERS", "SEED", "SEED_MAX",
    "THREADS", "Arch", "DataName", "LossName", "OptimizerName", "Precision", "ProgressMode",
    "Range", "Resolved", "Rule", "SchedulerName", "TrainConfig", "check_value", "flag_name",
    "load_toml", "opt", "read_toml", "resolve", "to_toml", "tomllib", "validate",
]  # fmt: skip
