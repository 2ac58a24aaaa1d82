"""People's names in free text: a given name and a surname, capitalised, from Faker's lists of names.

A heuristic part of the notes' identifier guard (:mod:`mammo.store.cases.schema`): "Jane Smith",
"Pt: Jane Okafor", "MS SMITH", a record's "Smith, Jane" and a DICOM name, "DOE^JANE". Names that
are also words ("Rose", "May", "Will") count only beside another name, after a patient's label, or
alone after a title in capitals, so "Post Menopausal", "Will return" and "FURTHER EVALUATION WITH MR
MAY BE CONSIDERED" pass.
"""

from __future__ import annotations

import functools
import importlib
import re

__all__ = ["holds_a_name"]

# Faker's person providers whose lists are read: the languages of most of this app's users
_LOCALES = ("en_US", "en_GB", "en_IE", "fr_FR", "de_DE", "es_ES", "it_IT", "nl_NL", "pt_BR", "pl_PL")
_LETTERS = r"[^\W\d_](?:[^\W\d_]|['’-])*"  # a word of letters (any script), apostrophes and hyphens
_GAP = r"[^\S\r\n]+"  # spaces on one line
# every pair of neighbouring words, overlapping ("Dear Jane Smith": "Dear Jane" and "Jane Smith")
_PAIRS = re.compile(rf"\b({_LETTERS})(?={_GAP}({_LETTERS}))")
# a record's surname first: "Smith, Jane", "SMITH, JANE LCC" (pairs overlap: "Seen today, Smith, Jane")
_SURNAME_FIRST = re.compile(rf"\b({_LETTERS}),{_GAP}(?=({_LETTERS})\b)")
# given names that are words of a report after a comma ("Size: Small, Max 5 mm", "Margin: Clear, Frank
# invasion", "Brown, Amber fluid", "LONG, MAY BE CONSIDERED": reviews): no name there
_WORDS_AFTER_A_COMMA = frozenset({"max", "frank", "mark", "amber", "will", "may", "rose", "grace", "hope",
                                  "faith", "joy", "dawn", "ruby", "pearl", "summer", "april", "june",
                                  "august", "sterling", "clay", "lane", "bill", "pat", "art", "chase",
                                  "miles", "dale", "guy", "ray", "rich", "sandy", "wade", "crystal",
                                  "holly", "ivy", "olive", "violet", "hazel", "ginger", "coral", "jade",
                                  "sage", "drew", "norm", "early", "long", "short", "major", "minor"})
# a DICOM person name, family^given^middle, each part capitalised ("Doe^Jane", "DOE^JANE^A"; not
# "mass^size")
_DICOM_NAME = re.compile(r"\b[^\W\d_a-z](?:[^\W\d_]|['’-])*\^[^\W\d_a-z]")
_AFTER_PATIENT = re.compile(rf"\b(?:patient|pt|client)\b\.?\s*(?:name\s*)?[:=-]?[^\S\r\n]*({_LETTERS})"
                            rf"{_GAP}({_LETTERS})", re.IGNORECASE)
# a title in capitals and one or two words in capitals that end the phrase ("MS SMITH", "MR JOHN
# SMITH."): MR is also MRI and MS multiple sclerosis, so "MR MAY BE CONSIDERED" and "MS MAY EXPLAIN" go on
_CAPITALS = r"[^\W\d_a-z]{2,}"
_TITLE_IN_CAPITALS = re.compile(rf"\b(?:MR|MRS|MS|MISS|DR)\.?{_GAP}({_CAPITALS}(?:{_GAP}{_CAPITALS})?)"
                                r"(?=[^\S\r\n]*(?:[,.;:!?)]|$))", re.MULTILINE)


@functools.cache
def _names() -> tuple[frozenset[str], frozenset[str]]:
    """Given names and surnames (lower case) of :data:`_LOCALES`, a Polish surname's feminine form too
    ("Kowalski", "Kowalska")."""
    given, surnames = set(), set()
    for locale in _LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for kind in dir(provider):
            names = getattr(provider, kind)
            if kind.startswith("first_names") and isinstance(names, list | tuple | dict):
                given |= {name.lower() for name in names}
            elif "last_names" in kind and isinstance(names, list | tuple | dict):
                surnames |= {name.lower() for name in names}
    surnames |= {name[:-1] + "a" for name in surnames if name.endswith(("ski", "cki", "dzki"))}
    return frozenset(given), frozenset(surnames)


def _capitalised(word: str) -> bool:
    return word[0].isupper() and not word.isupper()


def _same_case(a: str, b: str) -> bool:
    """Both capitalised ("Smith, Jane") or both in capitals ("SMITH, JANE")."""
    return (_capitalised(a) and _capitalised(b)) or (a.isupper() and b.isupper() and len(a) > 1 < len(b))


def holds_a_name(text: str) -> bool:
    """Whether ``text`` seems to name a person: a given name then a surname, both capitalised ("Jane
    Smith", "Dear Jane Smith"); a given name and a capitalised word after a patient's label ("Pt: Jane
    Okafor"); a surname, a comma and a given name that is no report's word ("Smith, Jane", "SMITH,
    JANE"; not "Size: Small, Max 5 mm"); a DICOM name
    ("Doe^Jane"); or names in capitals ending a phrase after a title in capitals ("MS SMITH", where "MS
    LESION" and "MR MAY BE CONSIDERED" are no names)."""
    if _DICOM_NAME.search(text):
        return True
    given, surnames = _names()
    if any(_same_case(a, b) and a.lower() in surnames and b.lower() in given
           and b.lower() not in _WORDS_AFTER_A_COMMA for a, b in _SURNAME_FIRST.findall(text)):
        return True
    if any(_capitalised(a) and _capitalised(b) and a.lower() in given and b.lower() in surnames
           for a, b in _PAIRS.findall(text)):
        return True
    if any(a.lower() in given and _capitalised(b) for a, b in _AFTER_PATIENT.findall(text)):
        return True
    return any(all(word.lower() in given or word.lower() in surnames for word in found.split())
               for found in _TITLE_IN_CAPITALS.findall(text))
