"""pip's requirements-file format as torchenv reads it (torchenv.project.requirements)."""

from __future__ import annotations

from pathlib import Path

from torchenv.project import requirements as reqfiles


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def test_includes_constraints_continuations_hashes_and_a_bom(tmp_path):
    write(tmp_path, "requirements.txt", "\ufeff-r reqs/base.txt\n-c pins.txt\n"
          "tqdm==4.67.1 \\\n    --hash=sha256:" + "a" * 64 + "\n  # via x\nrich  # a comment\n")  # fmt: skip
    write(tmp_path, "reqs/base.txt", "einops>=0.8\n-r ../more.txt\n")
    write(tmp_path, "more.txt", "pyyaml\n")
    write(tmp_path, "pins.txt", "numpy<3\n")
    found = reqfiles.read(tmp_path, "requirements.txt")
    assert [(r.text, r.origin) for r in found.requirements] == [
        ("einops>=0.8", "reqs/base.txt:1"), ("pyyaml", "more.txt:1"),
        ("tqdm==4.67.1", "requirements.txt:3"), ("rich", "requirements.txt:6"),
    ]  # fmt: skip
    assert [(r.text, r.origin) for r in found.constraints] == [("numpy<3", "pins.txt:1")]
    assert found.problems == [] and found.files == [
        "requirements.txt",
        "reqs/base.txt",
        "more.txt",
        "pins.txt",
    ]


def test_pytorchs_index_is_skipped_with_a_note_another_index_is_a_problem(tmp_path):
    write(tmp_path, "requirements.txt", "--extra-index-url https://download.pytorch.org/whl/cu117\n"
          "-f https://download.pytorch.org/whl/torch_stable.html\n"
          "--index-url https://u:TOKEN@private.example/simple\n--no-binary einops\n-e .\neinops\n")  # fmt: skip
    found = reqfiles.read(tmp_path, "requirements.txt")
    assert [r.text for r in found.requirements] == ["einops"]
    assert (
        len(found.notes) == 4 and "requirements.txt:1: skipped --extra-index-url" in found.notes[0]
    )
    [problem] = found.problems
    assert problem.startswith(
        "requirements.txt:3: --index-url https://u:***@private.example/simple is another index"
    )
    assert "TOKEN" not in problem


def test_includes_outside_the_root_or_missing_and_loops(tmp_path):
    (tmp_path / "p").mkdir()
    write(tmp_path, "outside.txt", "secret-line\n")
    write(
        tmp_path / "p",
        "requirements.txt",
        "-r ../outside.txt\n-r nope.txt\n-r requirements.txt\nx\n",
    )
    found = reqfiles.read(tmp_path / "p", "requirements.txt")
    assert [r.text for r in found.requirements] == ["x"]
    assert found.problems[0].startswith("../outside.txt lies outside the project")
    assert found.problems[1] == "requirements.txt:2: -r nope.txt: there is no such file"
    assert all("secret-line" not in p for p in found.problems)
