"""Code only the tests and benchmarks use: the Runner double, a throw-away registry, a local
package index, the k8s manifests' loader, the manifest readers of the image tests. It is no part
of the library users install."""

from pathlib import Path

# This repository's root: the kit's first user, whose files the tests read.
REPO = Path(__file__).resolve().parents[2]
