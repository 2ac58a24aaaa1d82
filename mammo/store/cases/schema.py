"""What a case is: its columns, the one table of optional metadata, and their validation.

The Submit form, the command line and the dataset card are generated from :data:`METADATA_FIELDS`;
every shard of a store has exactly the columns of :func:`case_features` (the image, the label,
``case_id``, ``submitted_at``, ``image_sha256``, then one nullable column per metadata field).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import datasets

from ...errors import MammoError
from ...timestamps import time_name
from ...values import echoed, whole_number, yes_or_no
from .names import holds_a_name

__all__ = [
    "ARROW_TYPES",
    "CASE_COLUMNS",
    "DATA_DIR",
    "METADATA_FIELDS",
    "NOTHING_STORED",
    "MetadataField",
    "StoreError",
    "case_features",
    "label_doubt",
    "shard_name",
    "validate_metadata",
]

CASE_COLUMNS = ("image", "label", "case_id", "submitted_at", "image_sha256")
DATA_DIR = "data"  # where a store's shards are, in a folder and in a dataset repo alike
_CONTROL_OK = frozenset("\n\r\t")


def shard_name(moment: datetime) -> str:
    """A new shard's file name: ``train-<UTC time>-<random>.parquet`` (the ``train`` split's)."""
    return f"train-{time_name(moment, 32)}.parquet"


class StoreError(MammoError, ValueError):
    """A submission that cannot be stored (label, metadata, image, duplicate): say why.

    ``duplicate_of`` is the earlier case's id when the image was already submitted.
    """

    def __init__(self, message: str, *, duplicate_of: str | None = None, logged: str | None = None):
        super().__init__(message, logged=logged)
        self.duplicate_of = duplicate_of


@dataclass(frozen=True)
class MetadataField:
    """One optional metadata field: its type, allowed values, what it means and its form label.

    ``names`` describe the whole numbers ``min``, ``min + 1``, ... of a categorical int field.
    """

    kind: type  # str, int or bool
    help: str
    label: str
    choices: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None
    max_len: int | None = None
    names: tuple[str, ...] = ()
    free_text: bool = False  # checked for what looks like a patient identifier

    @property
    def short_label(self) -> str:
        """The form label without its parenthesis: "Notes (plain text, ...)" -> "Notes"."""
        return self.label.split(" (")[0]


# The one table of optional case metadata: the Submit form and the dataset card come from it.
# Free text (``notes``) is stored verbatim as plain text: markup such as HTML is kept as typed and
# never rendered as HTML by mammo.
METADATA_FIELDS: dict[str, MetadataField] = {
    "view": MetadataField(str, "mammographic view", "View", choices=("CC", "MLO")),
    "laterality": MetadataField(str, "breast side: L (left) or R (right)", "Laterality", choices=("L", "R")),
    "density": MetadataField(str, "ACR breast density category", "Breast density (ACR)",
                             choices=("A", "B", "C", "D")),
    "birads": MetadataField(int, "BI-RADS assessment category (0-6)", "BI-RADS assessment", min=0, max=6,
                            names=("incomplete: needs more imaging", "negative", "benign",
                                   "probably benign", "suspicious", "highly suggestive of malignancy",
                                   "known biopsy-proven malignancy")),
    "biopsy_confirmed": MetadataField(bool, "label confirmed by biopsy / histology", "Biopsy-confirmed"),
    "age": MetadataField(int, "patient age in years (18-120)", "Age in years", min=18, max=120),
    "notes": MetadataField(str, "free-text notes (plain text, no identifiers)",
                           "Notes (plain text, no identifiers, up to 2000 characters)", max_len=2000,
                           free_text=True),
}

# What free text must not hold, by what it looks like: a heuristic guard, refusing the common shapes of
# identifiers before they are stored and published (a name only as :mod:`.names` finds one: a surname
# alone, or in lower case, passes).
_MONTH = r"(?:january|february|march|april|june|july|august|september|october|november|december)"
_MON = r"(?:jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)"  # and "may": a word too, as are some of these
_ANY_MONTH = rf"(?:{_MONTH}|{_MON}|may)"
_DAY = r"\d{1,2}"
_ORDINAL = r"(?:st|nd|rd|th)"
_YEAR = r"(?:19|20)\d\d"
# A date with its month in words (a walk stored "follow-up 3 March 2024" and "reviewed 03 Mar 2024"),
# case-insensitive. A short month or "may" counts only with a year or an ordinal day, or after "of":
# "dec 5 mm" (decreased), "2 sep foci" (separate) and "1 and 3 may be" are words, not dates.
_DATE_IN_WORDS = "(?i:" + "|".join((
    # 3 Mar 2024, 12MAR2024, 3/Mar/2024
    rf"\b{_DAY}{_ORDINAL}?[ ./-]*{_ANY_MONTH}\.?[ ./,-]*(?:{_YEAR}|'\d\d)\b",
    rf"\b{_DAY}{_MON}\d\d\b",  # 12MAR24 (a RIS's)
    rf"\b{_DAY}{_ORDINAL}?(?:\s+of\s+|[ .-]+){_MONTH}\b",  # 3 March, 3rd of March
    rf"\b{_DAY}(?:{_ORDINAL}\s+(?:of\s+)?|\s+of\s+){_ANY_MONTH}\b",  # 3rd Mar, 3rd of may
    rf"\b{_MONTH}\s+{_DAY}{_ORDINAL}?\b",  # March 3
    rf"\b{_ANY_MONTH}\.?\s+{_DAY}{_ORDINAL}\b",  # Dec 5th, may 3rd
    rf"\b{_ANY_MONTH}\.?[ /-]{_DAY}{_ORDINAL}?[ /,-]+{_YEAR}\b",  # Mar-03-2024, may 3, 2024
    rf"\b{_ANY_MONTH}\.?,?\s+(?:of\s+)?(?:{_YEAR}|'\d\d)\b",  # March 2024, March of 2024, Dec '23
    rf"\b{_YEAR}[ ./-]?{_ANY_MONTH}[ ./-]?{_DAY}\b",  # 2024-Mar-03
)) + ")"

_IDENTIFIER_SHAPES: dict[str, Callable[[str], object]] = {  # what it looks like: a search of the text
    "a date": re.compile(rf"\b\d{{1,4}}[-/.]\d{{1,2}}[-/.]\d{{2,4}}\b|{_DATE_IN_WORDS}").search,
    # not a span of years ("2019-2021", nor its second year), nor a list of ranges ("12-15 20-25 mm");
    # after a letter and hyphen it is ("ABC-1234567"); a phone with full stops too ("555.123.4567";
    # not decimals, "12.5 13.5", nor a version, "10.12.04")
    "a long number (a record, ID or phone number)": re.compile(
        r"(?<!\d)(?<!\d[ -])(?!(?:19|20)\d\d ?- ?(?:19|20)\d\d(?!\d))"
        r"(?!\d{1,3} ?- ?\d{1,3}(?:[ ,;]+\d{1,3} ?- ?\d{1,3})+(?!\d))\d(?:[ -]?\d){6,}"
        r"|(?<![\d.])\d{3}\.\d{3}\.\d{4}(?![\d.])").search,
    # and spelt out to get past a filter ("jane.doe(at)example.org", "jane [at] example dot org")
    "an e-mail address": re.compile(
        r"[\w.+-]+@[\w-]+\.\w+"
        r"|[\w.+-]+\s*[(\[]at[)\]]\s*[^\W\d_][\w-]*(?:\.|\s*[(\[]?\bdot\b[)\]]?\s*)[^\W\d_]{2,}",
        re.IGNORECASE).search,
    "an identifier's label (MRN, DOB, NHS, SSN, name)": re.compile(
        r"\b(?:MRN|DOB|D\.O\.B|NHS|SSN|date of birth|patient name|name\s*:)", re.IGNORECASE).search,
    # a title (capitalised or lower case; Ms capitalised only: ms is milliseconds) and a capitalised
    # word, initials between ("Mrs Jane Smith", "dr Okafor", "Dr J. Smith", "Herr Müller"; "Dr review" is
    # not; "Mx" is no title here: it is mastectomy or mammography in notes); or a word in capitals
    # after a title in capitals that is no imaging abbreviation ("MRS SMITH"), or after MR., DR. or
    # MS. with its full stop ("DR. OKAFOR"; not "MR SHOWS", "DR MAMMOGRAPHY", "MS LESION"); on one
    # line, any space between ("Mrs\u00a0Smith" pasted from a record; "prior MR\nImpression" is not)
    "a name after a title (Mr, Mrs, Ms, Miss, Dr, Prof, Mme, Herr, Frau, Sr, Sra)": re.compile(
        r"\b(?:(?:[Mm]r|[Mm]rs|[Mm]iss|[Dd]r|[Pp]rof|[Mm]me|[Mm]lle|[Hh]err|[Ff]rau|[Ss]r|[Ss]ra|[Ss]rta|Ms)\.?"
        r"[^\S\r\n]+(?:[A-ZÀ-ÖØ-Þ]\.?[^\S\r\n]+)*[A-ZÀ-ÖØ-Þ](?:[^\W\d_]|['-])+"
        r"|(?:(?:MRS|MISS|PROF|MME|MLLE|HERR|FRAU)\.?|(?:MR|DR|MS)\.)[^\S\r\n]+[A-ZÀ-ÖØ-Þ]{2,}\b)").search,
    # by the names themselves ("Patient: Jane Smith", "Pt: Jane Okafor", "MS SMITH" passed the shapes)
    "a person's name": holds_a_name,
}

NOTHING_STORED = "Nothing was stored: "  # how a refusal that stresses it starts (once)
ARROW_TYPES = {str: "string", int: "int32", bool: "bool"}


def case_features(labels: Sequence[str]) -> datasets.Features:
    """The datasets schema of every shard for the label set ``labels``."""
    return datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=list(labels)),
            "case_id": datasets.Value("string"),
            "submitted_at": datasets.Value("string"),
            "image_sha256": datasets.Value("string"),
            **{name: datasets.Value(ARROW_TYPES[f.kind]) for name, f in METADATA_FIELDS.items()},
        }
    )


def _field_name(name: str, spec: MetadataField) -> str:
    """A field as the form shows it and the API names it: "Age in years ('age')"; "Notes" where they
    are the same word."""
    return spec.short_label if spec.short_label.lower() == name else f"{spec.short_label} ('{name}')"


def _validate_value(name: str, spec: MetadataField, value: Any) -> Any:
    """``value`` checked and normalised for ``spec``; StoreError with a plain reason otherwise."""
    field = _field_name(name, spec)
    if spec.kind is bool:
        said = yes_or_no(value)
        if said is None:
            raise StoreError(f"{field} must be yes/no (true or false), got {echoed(value)}.")
        return said
    if spec.kind is int:
        number = whole_number(value)
        if number is None:
            raise StoreError(f"{field} must be a whole number, got {echoed(value)}.")
        if (spec.min is not None and number < spec.min) or (spec.max is not None and number > spec.max):
            raise StoreError(f"{field} must be between {spec.min} and {spec.max}, got {echoed(number)}.")
        return number
    if not isinstance(value, str):
        raise StoreError(f"{field} must be text, got {type(value).__name__}.")
    if spec.choices:
        choice = value.strip().upper()
        if choice not in spec.choices:
            raise StoreError(
                f"{field} must be one of {', '.join(spec.choices)}, "
                f"got {echoed(value)}."
            )
        return choice
    if spec.max_len is not None and len(value) > spec.max_len:
        raise StoreError(f"{field} is {len(value)} characters long; the limit is {spec.max_len}.")
    # a lone surrogate (JSON's "\ud800") is no character: it cannot be written, and failed in the store
    if any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in _CONTROL_OK for ch in value):
        raise StoreError(f"{field} contains control characters or broken ones (an unpaired surrogate); "
                         "use plain text.")
    # invisible characters do not hide a name or number from the guard: read as spaces and as nothing
    # ("Mrs\u200bSmith", "Dr\u00adOkafor", "1234\u200b5678"; "M\u200bRN 1234", "jane@exa\u200bmple.org")
    readings = ["".join(mark if unicodedata.category(ch) == "Cf" else ch for ch in value)
                for mark in (" ", "")]
    readings += [unicodedata.normalize("NFKC", reading) for reading in readings]  # "Ｊａｎｅ" is "Jane"
    shapes = [shape for shape, found in _IDENTIFIER_SHAPES.items()
              if spec.free_text and any(found(reading) for reading in readings)]
    if shapes:
        raise StoreError(f"{NOTHING_STORED}{field} seems to hold a patient identifier "
                         f"({', '.join(shapes)}), and it would be stored and shared with the case as typed. "
                         "Leave out names, dates, record numbers, phone numbers and e-mail addresses.")
    return value


def validate_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every field of :data:`METADATA_FIELDS`, checked; missing or empty values become None."""
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise StoreError(f"Metadata must be a mapping of field to value, got {type(metadata).__name__}.")
    unknown = sorted(str(k) for k in metadata if k not in METADATA_FIELDS)
    if unknown:
        raise StoreError(
            f"Unknown metadata field(s): {', '.join(unknown)[:200]}. Allowed: {', '.join(METADATA_FIELDS)}."
        )
    clean: dict[str, Any] = {}
    problems = []  # every field's at once: a form with two wrong fields was refused for one, then the other
    for name, spec in METADATA_FIELDS.items():
        value = metadata.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            clean[name] = None
            continue
        try:
            clean[name] = _validate_value(name, spec, value)
        except StoreError as problem:
            problems.append(str(problem))
    if problems:  # one "Nothing was stored:" (the notes' problem says it) before them all
        said = " ".join(problem.removeprefix(NOTHING_STORED) for problem in problems)
        raise StoreError(f"{NOTHING_STORED}{said}" if said != " ".join(problems) else said)
    return clean


def label_doubt(label: str, metadata: Mapping[str, Any]) -> str | None:
    """Why the metadata given with a case doubts its confirmed label, or None: BI-RADS 6 is a known
    biopsy-proven malignancy (the other categories are assessments a biopsy can overturn)."""
    if metadata.get("birads") == 6 and label != "malignant":
        return (f"BI-RADS 6 (a known biopsy-proven malignancy) was given with the label {label}: if the "
                "label is wrong, correct the case's label; if the film shows the other breast, it is right "
                "as it is")
    return None
