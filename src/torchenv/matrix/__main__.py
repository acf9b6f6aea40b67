"""`python -m torchenv.matrix [--json]`: the target names (a JSON list for CI matrices)."""

from torchenv.matrix import main

raise SystemExit(main())
