"""`python -m torchenv.matrix [--json] [--event EVENT]`: the target names (a JSON list for CI
matrices); with --event, the targets targets.toml's [ci] table builds on that event."""

from torchenv.matrix import main

raise SystemExit(main())
