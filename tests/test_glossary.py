"""The glossary under the tabs: every term once, each with its meaning."""

from __future__ import annotations

import re

from mammo.glossary import GLOSSARY, glossary_markdown


def test_every_term_is_listed_once_with_its_meaning() -> None:
    lines = glossary_markdown().splitlines()
    assert [re.match(r"- \*\*(.+?)\*\*: ", line).group(1) for line in lines] == list(GLOSSARY)
    assert [line.split("**: ", 1)[1] for line in lines] == list(GLOSSARY.values())
