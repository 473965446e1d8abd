"""``python -m classiformer``: the command line, where the ``classiformer`` script is not on PATH."""

from .cli import run

run()
