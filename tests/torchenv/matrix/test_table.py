from __future__ import annotations

from torchenv import matrix
from torchenv.matrix import table


def test_text_and_markdown_have_a_row_per_target_under_the_columns():
    targets = list(matrix.load().values())
    lines = table.text(targets).splitlines()
    assert lines[0].split()[:2] == ["target", "torch"] and set(lines[1]) <= {"-", " "}
    assert [line.split()[0] for line in lines[2:]] == [t.name for t in targets]
    md = table.markdown(targets).splitlines()
    assert len(md) == 2 + len(targets) and md[1] == "|" + "---|" * len(table.COLUMNS)
    assert f"`{targets[0].image()}`" in md[2]
