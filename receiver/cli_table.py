"""Plain-text tables for the CLI: columns sized to their content."""

from __future__ import annotations

import unicodedata
from typing import Any


def table(header: list[str], rows: list[list[Any]], *, right: frozenset[int] = frozenset(),
          indent: str = "") -> str:
    """Columns as wide as their widest cell, two spaces apart (so a 24-character Authing
    id never runs into the next column); ``right``: indexes of right-aligned columns; the
    last column is not padded."""
    cells = [[str(v) for v in row] for row in [header, *rows]]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - _width(cell))
            last = i == len(row) - 1
            parts.append(pad + cell if i in right else cell + ("" if last else pad))
        lines.append(indent + "  ".join(parts).rstrip())
    return "\n".join(lines)


def _width(text: str) -> int:
    """Terminal columns: CJK (East Asian wide) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
