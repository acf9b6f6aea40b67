"""`python -m torchsmoke`: see the package docstring (`python -m torchsmoke --help`)."""

import sys

from torchsmoke.cli import main

if __name__ == "__main__":
    sys.exit(main())
