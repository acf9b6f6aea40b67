"""torchbuild.constraints: the torch family's pins written for PIP_CONSTRAINT and UV_CONSTRAINT."""

from __future__ import annotations

from importlib import metadata

from torchbuild import constraints


def _versions(known: dict[str, str]):
    def version_of(name: str) -> str:
        if name not in known:
            raise metadata.PackageNotFoundError(name)
        return known[name]

    return version_of


def test_pins_are_the_installed_family_members_local_labels_kept():
    found = constraints.pins(_versions({"torch": "2.7.1+cu118", "torchaudio": "2.7.1+cu118"}))
    assert found == {"torch": "2.7.1+cu118", "torchaudio": "2.7.1+cu118"}


def test_render_and_parse_round_trip():
    text = constraints.render({"torch": "2.14.1", "torchvision": "0.29.2"})
    assert text.startswith("# ") and text.endswith("torch==2.14.1\ntorchvision==0.29.2\n")
    assert constraints.parse(text.splitlines()) == {"torch": "2.14.1", "torchvision": "0.29.2"}


def test_main_writes_the_file_and_refuses_an_environment_without_torch(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "c.txt"
    monkeypatch.setattr(
        metadata, "version", _versions({"torch": "2.14.1", "torchvision": "0.29.2"})
    )
    assert constraints.main(["--out", str(out)]) == 0
    assert constraints.parse(out.read_text().splitlines()) == {
        "torch": "2.14.1", "torchvision": "0.29.2",
    }  # fmt: skip
    assert not list(tmp_path.glob("*.tmp"))
    assert str(out) in capsys.readouterr().out
    monkeypatch.setattr(metadata, "version", _versions({}))
    assert constraints.main(["--out", str(tmp_path / "none.txt")]) == 1
    assert "torch is not installed" in capsys.readouterr().err
    assert not (tmp_path / "none.txt").exists()
