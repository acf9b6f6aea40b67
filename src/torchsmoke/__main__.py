"""`python -m torchsmoke`: see the package docstring; the command line is torchsmoke.cli's."""

from __future__ import annotations

import sys

from torchsmoke.cli import main

if __name__ == "__main__":
    sys.exit(main())
