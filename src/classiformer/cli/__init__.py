"""The ``classiformer`` command line. Each sub-command lives in its own module and only parses
arguments, calls the library and formats output."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from .. import __version__
from ..checkpoint import CheckpointError
from ..config import ConfigError
from ..data import DataError, DownloadError
from ..distributed import DistributedError
from ..runtime import configure_logging
from . import (
    calibrate_cmd,
    distill_cmd,
    evaluate_cmd,
    explain_cmd,
    export_cmd,
    predict_cmd,
    presets_cmd,
    serve_cmd,
    train_cmd,
    tune_cmd,
)

# Each module exposes ``register(subparsers)``, which adds its parser with ``func`` set.
COMMANDS = [train_cmd, tune_cmd, distill_cmd, evaluate_cmd, predict_cmd, explain_cmd, calibrate_cmd, export_cmd, serve_cmd, presets_cmd]

EXPECTED_ERRORS = (DataError, DownloadError, CheckpointError, ConfigError, FileExistsError, FileNotFoundError, ValueError,
                   DistributedError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="classiformer",
        description="Train, evaluate and use transformer text classifiers. "
        "Run 'classiformer COMMAND --help' for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"classiformer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what train --nproc starts again in each process
    configure_logging(args.verbose)
    log = logging.getLogger("classiformer")
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader that went away shows here, not in the flush at interpreter exit
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except KeyboardInterrupt as e:
        # Ctrl-C, or a SIGTERM that a command turned into this: the shell's status for the signal
        # (128 + 2 = 130, 128 + 15 = 143), and what was saved (training says so in its message).
        signum = int(getattr(e, "signum", signal.SIGINT))
        print(f"interrupted: {e}" if str(e) else "interrupted", file=sys.stderr)
        return 128 + signum
    except EXPECTED_ERRORS as e:
        if args.verbose:
            log.exception("failed")
        print(f"error: {e}", file=sys.stderr)
        return 1


def _stdout_closed() -> int:
    """The reader of standard output went away (``classiformer predict RUN | head -3``): stop
    quietly, as Unix tools do, with the status a SIGPIPE would have given (128 + 13 = 141, which
    ``set -o pipefail`` scripts see from ``cat`` too). Python flushes stdout once more at exit; it
    now points at /dev/null so that flush cannot fail as well (see the Python docs' "Note on
    SIGPIPE" in the signal module)."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # stdout is not a file (replaced in-process): nothing flushes to a pipe
        return 128 + int(signal.SIGPIPE)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return 128 + int(signal.SIGPIPE)


if __name__ == "__main__":
    sys.exit(main())
