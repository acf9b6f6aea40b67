"""The one version parser, and the driver table that the matrix, the doctor and the suite share."""

from __future__ import annotations

import pytest

from torchbuild import versions
from torchenv import matrix


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("2.11.0+cu130", (2, 11, 0)),
        ("575.51.03", (575, 51, 3)),
        ("0.29.2", (0, 29, 2)),
        ("2.12.0rc1", (2, 12, 0)),
        (" 3.11 ", (3, 11)),
        ("unknown", ()),
    ],
)
def test_parse_takes_the_numeric_release(text, parsed):
    assert versions.parse(text) == parsed


def test_driver_versions_compare_as_numbers_not_text():
    assert versions.at_least("580.65.06", "580.9")
    assert not versions.at_least("570.26", "575.51.03")
    assert versions.at_least("575.51.03", "575.51.03")


def test_minor_and_min_driver():
    assert versions.minor("2.7.1+cu118") == "2.7"
    assert versions.min_driver("12.8") == "570.26"
    assert versions.min_driver("13.0.1") == "580.65.06"  # a patch release of the toolkit
    assert versions.min_driver(None) is None and versions.min_driver("9.9") is None


@pytest.mark.parametrize("name", [t for t in matrix.names() if matrix.get(t).is_cuda])
def test_every_cuda_target_takes_its_driver_from_the_one_table(name):
    t = matrix.get(name)
    assert t.min_driver == versions.MIN_DRIVER[t.cuda]
