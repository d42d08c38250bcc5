"""How every stage script ends: an expected failure is one line, Ctrl-C is one line and 130.

    def main(argv=None) -> int:
        args = parser.parse_args(argv)
        return run_stage(f"train_image@{args.name}", lambda: train(...))

An expected failure (bad params, an unusable tracking store, a bad checkpoint, a
diverged run, a missing input) prints ``<stage>: <message>`` on stderr and
returns 1, the format the download and prepare stages have always printed;
any other exception is a bug and keeps its traceback. Ctrl-C prints
``<stage>: interrupted`` and returns 130 (128 + SIGINT, what a shell reports),
after the ``with`` blocks it passed through have cleaned up (temporary files,
the MLflow run ended FAILED, partial metrics removed).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from genmodels.checkpoints import CheckpointError
from genmodels.config import ParamsError
from genmodels.finite import NonFiniteError
from genmodels.tracking import TrackingError

INTERRUPTED = 130  # 128 + SIGINT

# what a user can fix from the message alone
EXPECTED: tuple[type[BaseException], ...] = (
    ParamsError, TrackingError, CheckpointError, NonFiniteError, FileNotFoundError, ValueError,
)


def run_stage(stage: str, work: Callable[[], object],
              expected: tuple[type[BaseException], ...] = ()) -> int:
    """Run ``work()``; 0 on success, else one line on stderr and 1 (130 for Ctrl-C)."""
    try:
        work()
    except KeyboardInterrupt:
        print(f"{stage}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except (*EXPECTED, *expected) as err:
        print(f"{stage}: {err}", file=sys.stderr)
        return 1
    return 0
