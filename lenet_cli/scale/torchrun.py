"""torchrun without its own output: what `lenet train --nproc N` starts (launch.py).

``python -m lenet_cli.scale.torchrun ARGS`` is ``torchrun ARGS`` whose logging (its banner about
OMP_NUM_THREADS, "Sending process N closing signal", "failed (exitcode: 4)") is switched off and
whose ending exceptions (ChildFailedError's report, SignalException after a Ctrl-C) become an
exit code instead of a traceback. Those are written for someone who runs torchrun by hand; under
``--nproc`` the ranks say what happened and the launcher says it once. The ranks inherit this
process's stderr and print to it as before. ``LENET_DEBUG=1`` makes the launcher run the plain
torchrun instead, with all of its output.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """torchrun's exit code: 0, 1 when a rank failed, 128 + N after signal N."""
    import logging
    import warnings

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(argv)
    except ChildFailedError:
        return 1
    except SignalException as e:
        return 128 + int(e.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
