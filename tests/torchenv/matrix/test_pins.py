import dataclasses

import pytest

from torchbuild import versions
from torchenv import matrix
from torchenv.errors import UserError
from torchenv.matrix import pins


def variant_of(name, **changes):
    return dataclasses.replace(matrix.get(name), **changes)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"torch": "2.8.0", "torchvision": "0.23.0", "torchaudio": "2.8.0"}, "torch 2.8.0 has no cu118 build"),
        ({"torchvision": "0.23.0"}, "torchvision 0.23.0 does not match torch 2.7.1"),
        ({"torchaudio": "2.8.0"}, "torchaudio 2.8.0 does not pair with torch 2.7.1"),
        ({"python": "3.14"}, "supports Python 3.9 to 3.13, not 3.14"),
        ({"index_url": "https://download.pytorch.org/whl/cu126"}, "does not end in /cu118"),
        ({"torch": "2.99.0"}, "not in torchenv's release table"),
    ],
    ids=["cuda118 with torch 2.8", "torchvision of another torch", "torchaudio of another torch",
         "python too new", "index of another variant", "unknown torch"],
)  # fmt: skip
def test_combinations_that_cannot_exist_are_refused_with_the_reason(changes, reason):
    found = pins.problems(variant_of("cuda118", **changes))
    assert any(reason in p for p in found), found


def test_last_torchaudio_with_a_newer_torch_needs_the_same_cuda_minor():
    ok = variant_of("cuda13", torch="2.14.1", torchvision="0.29.2")
    assert pins.problems(ok) == []  # torchaudio 2.11.0 + torch 2.14.1, both cu130 (checked pairing)
    bad = variant_of(
        "cuda13", torch="2.14.1", torchvision="0.29.2", cuda="13.2", variant="cu132",
        index_url="https://download.pytorch.org/whl/cu132",
    )  # fmt: skip
    assert any(
        "different from torch's" in p or "differs from torch's" in p for p in pins.problems(bad)
    )


def test_default_index_serves_cuda_builds_only():
    found = pins.problems(variant_of("cpu", index_url=None))
    assert any("default index serves the cu130 build" in p for p in found)


def test_abi_stable_torchvision_works_with_any_newer_torch():
    t = variant_of("cuda13", torch="2.14.1", torchvision="0.29.2")
    assert not [p for p in pins.problems(t) if "torchvision" in p]


def test_check_raises_one_line_naming_the_target():
    with pytest.raises(
        UserError, match=r"^target cuda118: pins cannot exist: torch 2.8.0 has no cu118"
    ):
        pins.check(variant_of("cuda118", torch="2.8.0", torchvision="0.23.0", torchaudio="2.8.0"))


def test_minor():
    assert versions.minor("2.7.1+cu118") == "2.7"
