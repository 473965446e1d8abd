"""``python -m classiformer``: the command line, where the ``classiformer`` script is not on PATH."""

import sys

from .cli import main

sys.exit(main())
