"""What a project declares (torchenv.project.declared)."""

from __future__ import annotations

from torchenv.project.declared import Dependencies, Dependency


def test_names_are_normalized_and_origins_found_by_name():
    found = Dependencies("requirements.txt", (Dependency("Py_YAML>=6", "requirements.txt:2"),))
    assert found.items[0].name == "py-yaml" and found.requirements == ["Py_YAML>=6"]
    assert found.origin_of("py.yaml") == "requirements.txt:2" and found.origin_of("x") is None
