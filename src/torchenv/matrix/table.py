"""The target matrix as a table: `invoke matrix` (text) and the README (Markdown)."""

from __future__ import annotations

from collections.abc import Iterable

from torchenv.matrix import Target

COLUMNS = ("target", "torch", "torchvision", "torchaudio", "python", "variant", "CUDA",
           "min driver", "image", "image size", "compressed")  # fmt: skip


def rows(targets: Iterable[Target]) -> list[tuple[str, ...]]:
    return [
        (
            t.name, t.torch, t.torchvision, t.torchaudio, t.python, t.variant,
            t.cuda or "-", t.min_driver or "-", t.image(),
            f"{t.image_size_gb:.1f} GB" if t.image_size_gb else "not measured",
            f"{t.image_gzip_gb:.1f} GB" if t.image_gzip_gb else "not measured",
        )
        for t in targets
    ]  # fmt: skip


def text(targets: Iterable[Target]) -> str:
    body = [COLUMNS, *rows(targets)]
    widths = [max(len(row[i]) for row in body) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in body
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(targets: Iterable[Target]) -> str:
    body = rows(targets)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(f"`{c}`" if i == 8 else c for i, c in enumerate(r)) + " |"
              for r in body]  # fmt: skip
    return "\n".join(lines) + "\n"
