"""The ``classiformer`` command line. Each sub-command lives in its own module and only parses
arguments, calls the library and formats output."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from .. import __version__
from ..checkpoint import CheckpointError
from ..config import ConfigError
from ..data import DataError, DownloadError
from ..runtime import configure_logging

# Each command's module (``NAME_cmd``) exposes ``register(subparsers)``, which adds its parser with
# ``func`` set. A command that is named on the command line imports only its own module: the others
# import PyTorch, and ``serve`` on an exported model runs without it (~210 MB less memory).
COMMANDS = ["train", "tune", "distill", "evaluate", "predict", "explain", "calibrate", "export", "serve", "presets"]

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    DataError, DownloadError, CheckpointError, ConfigError, FileExistsError, FileNotFoundError, ValueError,
)


def expected_errors() -> tuple[type[BaseException], ...]:
    """:data:`EXPECTED_ERRORS`, and ``distributed.DistributedError`` once that module (which
    imports PyTorch) is loaded: before that, nothing can have raised it."""
    dist = sys.modules.get("classiformer.distributed")
    return EXPECTED_ERRORS + ((dist.DistributedError,) if dist is not None else ())


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser: every command, or with ``only`` just that one (what ``main`` runs)."""
    parser = argparse.ArgumentParser(
        prog="classiformer",
        description="Train, evaluate and use transformer text classifiers. "
        "Run 'classiformer COMMAND --help' for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"classiformer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if only is None else [only]:
        importlib.import_module(f".{name}_cmd", __name__).register(sub)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word that is not an option), when it is a known one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    args.argv = argv  # what train --nproc starts again in each process
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
    except expected_errors() as e:
        if args.verbose:
            log.exception("failed")
        print(f"error: {e}", file=sys.stderr)
        return 1


def run() -> None:
    """The ``classiformer`` program (and ``python -m classiformer``): :func:`main`, then exit with
    its status. A worker that torchrun started leaves through
    :func:`classiformer.distributed.leave_worker`, without the interpreter's finalization (where
    PyTorch's threads can abort a process that succeeded); ``main`` itself never exits, so it can
    be called in-process."""
    code = main()
    if "torch.distributed" in sys.modules:  # else no command here used PyTorch: nothing to skip
        from .. import distributed

        distributed.leave_worker(code)  # returns unless a launcher started this process
    sys.exit(code)


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
