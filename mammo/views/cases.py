"""What the Submit case tab shows: receipts of submissions, bulk uploads, corrections and withdrawals, the
label-next pool, the audit log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..store.cases import METADATA_FIELDS, label_conflict_text
from ..store.cases.schema import NOTHING_STORED
from ..timestamps import human_time
from ._common import _fmt, _short_id, literal, percent

__all__ = ["QUEUE_COLUMNS", "queue_rows", "queue_choices", "queue_note", "offer_text", "AUDIT_SHOWN",
           "audit_rows", "receipt_text", "pending_stored_text", "case_choices", "withdrawal_question",
           "correction_text", "withdrawal_text", "refused_text", "bulk_receipt_text", "metadata_from_fields",
           "HEADER_FIELDS", "HeaderFill", "header_fill", "copy_text"]


QUEUE_COLUMNS = ["rank", "offered", "uncertainty (points)", "malignancy score", "most likely", "model",
                 "id (start)"]


def queue_rows(entries: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """The label-next pool as table rows, in the pool's order (the most uncertain first)."""
    return [[rank, human_time(e.get("offered_at")), _fmt(e.get("uncertainty"), 1),
             percent(e.get("malignancy_score")), e.get("label"), e.get("model_version"), e["id"][:12]]
            for rank, e in enumerate(entries, 1)]


def queue_choices(entries: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The label-next pool's picker: each image by its id's start and its uncertainty, in the pool's
    order."""
    return [(f"{e['id'][:12]} (uncertainty {_fmt(e.get('uncertainty'), 1)})", e["id"]) for e in entries]


def queue_note(entries: Sequence[Mapping[str, Any]]) -> str:
    """How many images wait for a label."""
    count = len(entries)
    return (f"{count} image{'s' if count > 1 else ''} waiting for a label." if count
            else "No image is waiting for a label.")


def offer_text(entry: Mapping[str, Any]) -> str:
    """An offer for labelling in words: kept (its id, its uncertainty), or waiting already since when."""
    if entry["already_offered"]:
        return (f"This image is already waiting for a label as `{entry['id'][:12]}` (offered "
                f"{entry['offered_at'][:16].replace('T', ' ')} UTC): nothing more to do.")
    spread = entry.get("uncertainty")
    measured = f"uncertainty {spread:.1f} points" if spread is not None else "no uncertainty measured"
    return (f"Offered for labelling as `{entry['id'][:12]}` ({measured}). Thank you: a clinician can now "
            "label it in the Submit case tab.")


AUDIT_SHOWN = ["when", "action", "who", "what"]


# a retrain's audit details whose key read wrong as words ("cases used: 14; cases left out: 1" beside a
# verdict that trained on 13; the details come in the order of their keys); the others read as their key
_AUDIT_NAMES = {
    "cases_used": "cases read",
    "cases_trained_on": "cases trained on",
    "cases_left_out": "cases read that are base films (not trained on)",
    "cases_repeated": "later copies of a case (not trained on)",
    "cases_disputed": "copies of a film under different labels (not trained on)",
    "cases_in_label_conflict": "base films under another label (the base label kept)",
    **{f"{who}_{key}": f"{who} {name}" for who in ("candidate", "current")
       for key, name in (("n", "films scored"), ("auc_malignant", "AUC malignant vs rest"),
                         ("auc_malignant_ci95", "AUC 95% CI"), ("auc_ci_resampled", "interval drawn over"))},
    "label_doubt": "warned",
}


def _audit_value(value: Any) -> str:
    """A detail of an audit event in words: yes/no, an interval as low–high, ids counted and cut."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"{_fmt(value[0])}–{_fmt(value[1])}"  # a confidence interval
    if isinstance(value, list):
        shown = ", ".join(_short_id(str(v)) for v in value[:3])
        return f"{len(value)}: {shown}{', …' if len(value) > 3 else ''}" if value else "none"
    if isinstance(value, float):
        return _fmt(value)
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_audit_value(v)}" for k, v in value.items()
                         if v is not None) or "none"  # a retrain's options: "image size None" said nothing
    return str(value)


def audit_rows(events: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Audit events, newest first, as table rows in words (ids shortened; the CSV has them whole)."""
    def what(details: Mapping[str, Any]) -> str:
        details = dict(details)
        if {"was", "label"} <= details.keys():  # a label correction: from which label to which, first
            details = {"label": f"{details.pop('was')} → {details.pop('label')}", **details}
        if "reason" in details:  # a rejection's why before its figures (a walk found it mid-row)
            details = {"reason": details.pop("reason"), **details}
        shown = [f"{_AUDIT_NAMES.get(k, k.replace('_', ' '))}: {_audit_value(v)}" for k, v in details.items()
                 if v is not None]
        return "; ".join(shown)

    return [[human_time(e.get("at")), e.get("action", ""), e.get("user", ""), what(e.get("details") or {})]
            for e in reversed(events)]


def _said(value: Any) -> str:
    """A stored metadata value as the receipt says it: yes/no for a boolean, else the value as text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return literal(str(value))


def receipt_text(receipt: Mapping[str, Any], fields: Mapping[str, Any]) -> str:
    """A submission's receipt in words: what was stored, under which id, and the totals.

    ``fields`` is the metadata table (name -> field with a ``short_label``).
    """
    given = {k: v for k, v in (receipt.get("metadata") or {}).items() if v is not None}
    shown = [f"{fields[k].short_label}: {_said(v)}" for k, v in given.items() if k in fields]
    blank = [fields[k].short_label for k in fields if k not in given]
    lines = [f"**Case {_where(receipt)}** as **{receipt['label']}**, id `{receipt['case_id']}`, "
             f"{human_time(receipt.get('submitted_at'))}. The dataset now holds {receipt['total_cases']} "
             f"submitted case{'' if receipt['total_cases'] == 1 else 's'}.",
             "Metadata stored: " + (stored := "; ".join(shown) if shown else "none")
             + ("" if stored.endswith((".", "!", "?")) else ".")]  # notes may end a sentence
    if blank:
        lines.append("Left empty (stored as empty, not guessed): " + ", ".join(blank) + ".")
    return "  \n".join([*lines, *_receipt_notes(receipt)])


def pending_stored_text(receipt: Mapping[str, Any]) -> str:
    """An offered image stored as a case, in words, with the submission's notes (a base film is left
    out of training; a warning)."""
    case = f"`{receipt['case_id']}` ({receipt['label']})"
    # queued with the Hub down: "Stored as case" said nothing of it (a Hub probe)
    said = (f"Stored as case {case}" if receipt.get("status", "stored") == "stored" else
            f"Case {case} is {_where(receipt)}")
    return "  \n".join([f"{said}; it left the pool.", *_receipt_notes(receipt)])


def _receipt_notes(receipt: Mapping[str, Any]) -> list[str]:
    """A receipt's notes: what a retrain does with a base film's case, and a warning (queued, ...)."""
    return [*([f"⚠️ Note: {receipt['base_film']}."] if receipt.get("base_film") else []),
            *([f"⚠️ Check: {receipt['label_doubt']}."] if receipt.get("label_doubt") else []),
            *([f"⚠️ Check: {receipt['dicom_header']}"] if receipt.get("dicom_header") else []),
            *([f"⚠️ Check: {copy_text(receipt['label'], receipt['copy_of'])}"]
              if receipt.get("copy_of") else []),
            *([f"⚠️ Check: this image does not look like a whole mammogram ({receipt['not_like_a_film']}); "
               "it was stored as given, and a retrain learns from it: withdraw it if it is not a film."]
              if receipt.get("not_like_a_film") else []),
            *([f"Note: {receipt['warning']}"] if receipt.get("warning") else [])]


def case_choices(cases: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """A case picker's choices: each case by its id's start, its label now and its day."""
    return [(f"{c['case_id'][:8]} ({c['label']}, {c['submitted_at'][:10]})", c["case_id"]) for c in cases]


def withdrawal_question(case_id: str, label: str, reason: str) -> str:
    """The question before a withdrawal, which cannot be undone on the page: which case, and why."""
    return (f"Withdraw case `{case_id}` (labelled {label}) because: {reason}? From then on it is left out "
            "of the counts, the case lists and every retrain, for good: **a withdrawal cannot be undone "
            "here.**")


def correction_text(receipt: Mapping[str, Any]) -> str:
    """A label correction's receipt in words: the case, its label now and before, the totals."""
    learns = "" if receipt.get("base_film") or receipt.get("copy_of") else \
        " The next retrain learns the corrected label."
    return _amendment_text(receipt, (
        f"**Label corrected** ({_where(receipt)}): case `{receipt['case_id']}` is now **{receipt['label']}** "
        f"(was {receipt['was']}), {human_time(receipt.get('corrected_at'))}.{learns}"))


def withdrawal_text(receipt: Mapping[str, Any]) -> str:
    """A withdrawal's receipt in words: the case, why, what changes and what does not, the totals."""
    return _amendment_text(receipt, (
        f"**Case withdrawn** ({_where(receipt, 'recorded')}): case `{receipt['case_id']}` "
        f"(was {receipt['was']}), {human_time(receipt.get('corrected_at'))}, "
        f"because: {receipt['withdrawn']}. From now on it is left out of the counts, the case lists and "
        "every retrain, its image is not shown, and the "
        "same image is not taken again. Published versions keep what they learnt from it. Its image "
        "stays in the dataset's files until a maintainer erases it: to have it erased, give the "
        "maintainer of this app the case id (README: *Withdrawing a case*)."))


def _amendment_text(receipt: Mapping[str, Any], said: str) -> str:
    """An amendment's words, the totals after it and the receipt's notes, one per line."""
    counts = ", ".join(f"{label} {n}" for label, n in receipt["counts"].items())
    return "  \n".join([said, f"Submitted cases per label now: {counts}.", *_receipt_notes(receipt)])


def _where(receipt: Mapping[str, Any], done: str = "stored") -> str:
    """Where a receipt's cases (or its amendment, ``done``: "recorded") are: in the store, or queued
    for the Hub."""
    return (done if receipt.get("status") == "stored" else
            "queued for upload to the dataset (kept on this server until the Hub answers)")


def refused_text(why: str) -> str:
    """Why a submission was refused, kept where its receipt would be once the toast has gone (said
    once: a refusal that starts "Nothing was stored: " read "Not stored. Nothing was stored: ")."""
    return f"⚠️ **Not stored.** {literal(why.removeprefix(NOTHING_STORED))}"


_UNLIKE_NAMED = 10  # images named in a bulk receipt's check; the JSON receipt lists them all


def bulk_receipt_text(receipt: Mapping[str, Any]) -> str:
    """A bulk upload's receipt in words: how many cases were stored (or queued), the totals, and the
    files skipped because their images were stored before; or (``refused``) why nothing was."""
    if "refused" in receipt:  # kept on the page after the toast has gone
        return f"⚠️ {literal(receipt['refused'])}"
    stored, total = len(receipt["case_ids"]), receipt["total_cases"]
    when = human_time(receipt.get("submitted_at"))
    lines = [f"**{stored} case{'' if stored == 1 else 's'} {_where(receipt)}**, {when}. "
             f"The dataset now holds {total} submitted case{'' if total == 1 else 's'}."]
    skipped = receipt.get("skipped") or []
    for withdrawn, why in ((False, "stored before"), (True, "withdrawn before, or a copy of a withdrawn "
                                                          "case's image: not taken again")):
        if names := [literal(s["name"]) + (f" (case `{case[:8]}`)" if (case := s.get("duplicate_of")) else "")
                     for s in skipped if bool(s.get("withdrawn")) == withdrawn]:
            lines.append(f"Skipped, {why}: {', '.join(names)}.")
    if conflicts := label_conflict_text(skipped):
        lines.append(f"⚠️ {literal(conflicts)}")
    if documents := receipt.get("not_images"):
        lines.append(f"Left out, documents beside the images: {', '.join(map(literal, documents))}.")
    if receipt.get("base_films"):
        lines.append(f"⚠️ Note: {receipt['base_films']}.")
    if unlike := receipt.get("not_like_a_film"):
        one = len(unlike) == 1
        named = "; ".join(f"`{u['case_id']}` ({literal(u['name'])}: {u['why']})"
                          for u in unlike[:_UNLIKE_NAMED])
        more = f"; and {len(unlike) - _UNLIKE_NAMED} more" if len(unlike) > _UNLIKE_NAMED else ""
        lines.append(f"⚠️ Check: {'this image does' if one else f'{len(unlike)} of these images do'} not look "
                     f"like a whole mammogram: {named}{more}. {'It was' if one else 'They were'} stored as "
                     f"given, and a retrain learns from {'it' if one else 'them'}: withdraw any that is not "
                     "a film (*Correct a stored case's label, or withdraw the case*, below, by its case id).")
    headers = receipt.get("dicom_headers") or []
    if filled := [h for h in headers if not h["differs"]]:
        lines.append(f"Side or view filled in from the DICOM header of {len(filled)} "
                     f"image{'' if len(filled) == 1 else 's'} (the JSON receipt names them).")
    for header in [h for h in headers if h["differs"]][:_UNLIKE_NAMED]:
        lines.append(f"⚠️ Check: {literal(header['name'])} (`{header['case_id']}`): {header['note']}")
    for copy in (receipt.get("copies_of_cases") or [])[:_UNLIKE_NAMED]:
        label = receipt["labels"][receipt["case_ids"].index(copy["case_id"])]
        lines.append(f"⚠️ Check: {literal(copy['name'])} (`{copy['case_id']}`): "
                     f"{copy_text(label, copy['copy_of'])}")
    if receipt.get("warning"):
        lines.append(f"Note: {receipt['warning']}")
    return "  \n".join(lines)


def copy_text(label: str, copies: Sequence[Mapping[str, Any]]) -> str:
    """A case labelled ``label`` that is a copy of the stored ``copies`` (each a case id and its label
    now; another size or encoding, or mirrored), in words: a retrain learns the film once, or none of
    its copies while their labels differ (a walk read "learns the film once" beside a third copy)."""
    named = ", ".join(f"`{copy['case_id']}` ({copy['label']})" for copy in copies)
    said = (f"this image looks like a copy of case{'s' if len(copies) > 1 else ''} {named} at another size "
            "or encoding, or mirrored.")
    labels = {label, *(copy["label"] for copy in copies)}
    if len(labels) > 1:
        return (f"{said} The copies' labels differ ({', '.join(sorted(labels))}): a retrain learns none of "
                "them until the labels agree (*Correct a stored case's label, or withdraw the case*).")
    return f"{said} A retrain learns the film once; withdraw this case if it is the same film."


def metadata_from_fields(**fields: Any) -> dict[str, Any]:
    """Optional metadata fields from the form, empty ones left out."""
    return {k: v for k, v in fields.items() if v not in (None, "", [])}


HEADER_FIELDS = ("laterality", "view")  # what a DICOM's header states of a film (imaging.dicom_view)


@dataclass(frozen=True)
class HeaderFill:
    """What a DICOM's header does to a case's side and view (:func:`header_fill`)."""

    set_to: dict[str, str | None] = field(default_factory=dict)  # the fields to change, and to what
    filled: dict[str, str] = field(default_factory=dict)  # what this header fills in (for the next file)
    filled_in: list[str] = field(default_factory=list)  # "Laterality R", newly filled in: to be said
    differ: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (the header's, the given)

    def _differ(self, given: str) -> str:
        return " and ".join(f"{METADATA_FIELDS[name].short_label} {stated} ({given} {value})"
                            for name, (stated, value) in self.differ.items())

    @property
    def info(self) -> str | None:
        """The form's toast for what it filled in."""
        return (f"{' and '.join(self.filled_in)} filled in from the DICOM file's header: check before "
                "submitting." if self.filled_in else None)

    @property
    def warning(self) -> str | None:
        """The form's toast for a side or view chosen against the header."""
        return f"The DICOM file's header says {self._differ('the form says')}: check which is right." \
            if self.differ else None

    @property
    def stored_note(self) -> str | None:
        """A stored case's receipt note: what the header filled in, and where the stored values differ."""
        said = [*([f"{' and '.join(self.filled_in)} filled in from the DICOM file's header."]
                  if self.filled_in else []),
                *([f"The DICOM file's header says {self._differ('stored as given:')}."]
                  if self.differ else [])]
        return " ".join(said) or None


def header_fill(header: Mapping[str, str], filled: Mapping[str, str],
                given: Mapping[str, str | None]) -> HeaderFill:
    """A DICOM's side and view (``header``, :func:`imaging.dicom_view`) in a form holding ``given``:
    a field left empty, or holding what the last file's header filled in (``filled``), takes the
    header's value, or is emptied where this header states none (a second DICOM kept the first's side:
    a review); a value the clinician chose stays, with a warning where the header says otherwise (a
    walk stored a film marked LCC as R)."""
    set_to, now, differ = {}, {}, {}
    for name, value in given.items():
        stated = header.get(name)
        if not value or value == filled.get(name):  # empty, or the last header's: the header decides
            if stated != value:
                set_to[name] = stated
            if stated:
                now[name] = stated
        elif stated and stated != value:
            differ[name] = (stated, value)
    filled_in = [f"{METADATA_FIELDS[name].short_label} {value}" for name, value in now.items()
                 if value != filled.get(name)]
    return HeaderFill(set_to, now, filled_in, differ)
