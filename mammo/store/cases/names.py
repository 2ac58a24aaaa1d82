"""People's names in free text: a given name and a surname, capitalised, from Faker's lists of names.

A heuristic part of the notes' identifier guard (:mod:`mammo.store.cases.schema`): "Jane Smith",
"Pt: Jane Okafor", "MS SMITH". Names that are also words ("Rose", "May", "Will") count only beside
another name or after a patient's label, so "Post Menopausal" and "Will return" pass.
"""

from __future__ import annotations

import functools
import importlib
import re

__all__ = ["holds_a_name"]

# Faker's person providers whose lists are read: the languages of most of this app's users
_LOCALES = ("en_US", "en_GB", "en_IE", "fr_FR", "de_DE", "es_ES", "it_IT", "nl_NL", "pt_BR", "pl_PL")
_WORD = r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ'’-]+"  # a capitalised word
_TWO_WORDS = re.compile(rf"\b({_WORD})[^\S\r\n]+({_WORD})\b")
_AFTER_PATIENT = re.compile(rf"\b(?:patient|pt|client)\b\.?\s*(?:name\s*)?[:=-]?[^\S\r\n]*({_WORD})"
                            rf"[^\S\r\n]+[A-ZÀ-ÖØ-Þ]", re.IGNORECASE)
_TITLE_IN_CAPITALS = re.compile(r"\b(?:MR|MRS|MS|MISS|DR)\.?[^\S\r\n]+([A-ZÀ-ÖØ-Þ]{2,})\b")


@functools.cache
def _names() -> tuple[frozenset[str], frozenset[str]]:
    """Given names and surnames (lower case) of :data:`_LOCALES`."""
    given, surnames = set(), set()
    for locale in _LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for kind in ("first_names", "first_names_female", "first_names_male"):
            given |= {name.lower() for name in getattr(provider, kind, ())}
        surnames |= {name.lower() for name in getattr(provider, "last_names", ())}
    return frozenset(given), frozenset(surnames)


def holds_a_name(text: str) -> bool:
    """Whether ``text`` seems to name a person: a given name then a surname, both capitalised ("Jane
    Smith"); a given name and a capitalised word after a patient's label ("Pt: Jane Okafor"); or a
    name in capitals after a title in capitals ("MS SMITH", where "MS LESION" is no name)."""
    given, surnames = _names()
    if any(a.lower() in given and b.lower() in surnames for a, b in _TWO_WORDS.findall(text)):
        return True
    if any(name.lower() in given for name in _AFTER_PATIENT.findall(text)):
        return True
    return any(name.lower() in given | surnames for name in _TITLE_IN_CAPITALS.findall(text))
