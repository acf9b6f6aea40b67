from __future__ import annotations

from torchenv.engine import labels


def test_a_container_carries_managed_target_and_its_role():
    assert labels.of("smoke", "cuda13") == {
        "io.torchenv.managed": "true",
        "io.torchenv.target": "cuda13",
        "io.torchenv.smoke": "cuda13",
    }


def test_an_image_carries_the_tag_its_build_gave_it():
    assert labels.of_image("torchenv/cpu:1") == {
        "io.torchenv.managed": "true",
        "io.torchenv.tag": "torchenv/cpu:1",
    }


def test_cli_args_are_one_label_flag_each():
    assert labels.cli_args({"a": "1", "b": "2"}) == ["--label", "a=1", "--label", "b=2"]
