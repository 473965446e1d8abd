"""``--device``, ``--threads`` and ``--no-progress``, in a module of their own: ``serve`` imports
only this and the server, so serving an exported model never loads PyTorch (``common`` imports the
training and evaluation code)."""

from __future__ import annotations

import argparse

from ..runtime import choose_threads, set_threads


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: auto)")
    g.add_argument("--threads", type=int, default=0, help="CPU threads, also ONNX Runtime's intra-op threads for an "
                   "exported model (default: the available cores that other work leaves free, by load average)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def apply_runtime(args: argparse.Namespace, pytorch: bool = True) -> None:
    """Set the thread count ``--threads`` asks for; ``pytorch=False`` (an exported model) leaves
    PyTorch unloaded and ONNX Runtime reads the count from ``runtime.chosen_threads``."""
    if pytorch:
        set_threads(args.threads)
    else:
        choose_threads(args.threads)
