"""Text in a terminal: display width (CJK counts two columns), escapes, padding and wrapping.

Presentation only, used by the console tables (e.g. ``measure``'s group table): a group label
is shown whole — wrapped, never cut — and a label of wide characters (Chinese, Japanese,
Korean) or combining marks keeps the columns after it aligned. Pure.
"""

from __future__ import annotations

import unicodedata


def printable(text: str) -> str:
    """Return ``text`` with control characters (a newline in a quoted CSV cell, a tab, a
    zero-width format character) written as escapes, so one label stays on one line."""

    def show(char: str) -> str:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return char.encode("unicode_escape").decode("ascii")
        return char

    return "".join(map(show, text))


def char_width(char: str) -> int:
    """Columns a character takes: 2 for East Asian wide/fullwidth, 0 for combining marks."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal."""
    return sum(map(char_width, text))


def pad(text: str, width: int) -> str:
    """Left-align ``text`` in ``width`` columns (by display width; never cut)."""
    return text + " " * max(0, width - display_width(text))


def wrap(text: str, width: int) -> list[str]:
    """Split ``text`` into pieces of at most ``width`` columns (at least one piece; a wide
    character is never split). Pieces break at characters, so every character is kept."""
    pieces, current, used = [], "", 0
    for char in text:
        w = char_width(char)
        if current and used + w > width:
            pieces.append(current)
            current, used = "", 0
        current, used = current + char, used + w
    pieces.append(current)
    return pieces
