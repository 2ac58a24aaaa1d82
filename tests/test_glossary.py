"""The glossary under the tabs: every term once, and each one a word the pages use."""

from __future__ import annotations

import re
from pathlib import Path

from mammo.glossary import GLOSSARY, glossary_markdown

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "app.py", ROOT / "mammo" / "views.py", ROOT / "mammo" / "analytics.py"]


def test_every_term_is_listed_once_in_words() -> None:
    lines = glossary_markdown().splitlines()
    assert [re.match(r"- \*\*(.+?)\*\*: ", line).group(1) for line in lines] == list(GLOSSARY)
    assert all(len(meaning.split()) >= 8 for meaning in GLOSSARY.values())


def test_each_term_explains_a_word_the_pages_use() -> None:
    """A term no page shows any more is an entry to drop (its first word, as the pages spell it)."""
    pages = " ".join(path.read_text() for path in PAGES).lower()
    unused = [term for term in GLOSSARY if re.split(r"[ (]", term)[0].lower() not in pages]
    assert not unused
