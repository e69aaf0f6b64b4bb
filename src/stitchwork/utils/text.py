"""Small helpers for console and report text."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 job"``, ``"2 jobs"``, ``"0 jobs"``: ``n`` and the noun in the number it takes."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
