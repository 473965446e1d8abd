"""classiformer presets: list the named model recipes."""

from __future__ import annotations

import argparse

from ..config import PRESETS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list model presets", description="List the named model presets and their sizes.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name, preset in PRESETS.items():
        print(f"{name} ({preset.family}): {preset.description}")
        print(f"    model {preset.model}")
        print(f"    tokenizer {preset.tokenizer}" + (f"\n    train {preset.train}" if preset.train else ""))
    return 0
