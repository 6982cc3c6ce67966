"""The benchmarks page: each benchmark owns one section of it, between its own begin and end markers."""

from __future__ import annotations

from pathlib import Path


def write_section(page: Path, begin: str, end: str, section: str) -> None:
    """Replace the section between ``begin`` and ``end`` on ``page`` (``section`` carries both
    markers), or append it when the page has none yet; the other sections stay as they are."""
    text = page.read_text(encoding="utf-8") if page.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    page.write_text(text, encoding="utf-8")
