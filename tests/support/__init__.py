"""Code only the tests and benchmarks use: a throw-away registry, the k8s manifests' loader, the
manifest readers of the image tests. It is no part of the library users install."""
