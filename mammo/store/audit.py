"""The audit log: who submitted, imported, retrained, promoted, rejected or rolled back what, when.

Append-only: each event is its own small JSON file (``<home>/audit/<UTC time>-<id>.json``), written
whole or not at all and never changed afterwards, so a kill during a write leaves every earlier
event intact. With the Hub backend for cases, each event is also queued in the case store's
outbox and uploaded to ``audit/`` in the dataset repo (the same way as case shards: it survives
restarts and a Hub that is down). Events hold user names, case ids, versions, options, metrics
and reasons; never an image, a DICOM tag or free-text notes.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import Settings
from ..timestamps import time_name, utc_moment
from ._fs import utc_now, write_new_file
from .cases import CaseStore

__all__ = ["AuditLog", "AUDIT_COLUMNS", "LATE_SUBMISSION", "SUBMITTER_NOT_RECORDED", "open_audit_log"]

AUDIT_COLUMNS = ["at", "action", "user", "details"]
# a stored case whose submission no event recorded (the app killed between the two), recorded after a start
LATE_SUBMISSION = "submission recorded late (no event was written when the case was stored)"
SUBMITTER_NOT_RECORDED = "not recorded"
SUBMITTING_ACTIONS = ("submission", "bulk import", LATE_SUBMISSION)
EVENTS_READ_FOR_SUBMISSIONS = 1000  # the newest events searched for the newest cases' submissions
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
Mirror = Callable[[str, bytes], None]
log = logging.getLogger(__name__)


class AuditLog:
    """Append-only events in ``folder``; ``mirror(name, content)`` also queues each one elsewhere.

    Args:
        folder: where the events are kept (created).
        mirror: called with each new event's file name and bytes (the Hub outbox), or None.
    """

    def __init__(self, folder: Path, mirror: Mirror | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.mirror = mirror
        self.not_queued = 0  # events written here that the mirror refused (this process's)
        self._lock = threading.Lock()

    def record(self, action: str, user: str | None, **details: Any) -> dict:
        """Append one event; returns it."""
        now = utc_now()
        event = {"at": now.isoformat(timespec="milliseconds"), "action": action,
                 "user": user or "anonymous", "details": details}
        name = f"{time_name(now)}.json"
        content = (json.dumps(event, sort_keys=True, default=str) + "\n").encode()
        with self._lock:
            write_new_file(self.folder / name, content)
        if self.mirror is not None:
            self._queue(name, content)
        return event

    def _queue(self, name: str, content: bytes) -> None:
        """An event written here, queued for the mirror. A failure is logged and counted
        (``not_queued``, in /health), not raised: the event is in this log and the change it records
        is made (a receipt said the audit log could not record it; a rollback made was answered as an
        error)."""
        try:
            self.mirror(name, content)
        except OSError as error:
            with self._lock:
                self.not_queued += 1
            log.error("audit event %s is in this store's log but was not queued for the Hub's copy: %s",
                      name, error)

    def record_amendment(self, receipt: dict, user: str | None) -> dict:
        """Append a case amendment's event from its receipt (``CaseStore.correct_label`` or
        ``withdraw``): ``label corrected`` with the label and the one it had, or ``case withdrawn``
        with the label it had and the reason."""
        if receipt["label"] is None:
            return self.record("case withdrawn", user, case_id=receipt["case_id"], was=receipt["was"],
                               reason=receipt["withdrawn"], status=receipt["status"])
        return self.record("label corrected", user, case_id=receipt["case_id"], label=receipt["label"],
                           was=receipt["was"], status=receipt["status"])

    def events(self, last: int | None = None) -> list[dict]:
        """Every event (or the ``last`` ones: only their files are read), oldest first; an unreadable
        file is listed as such, not hidden."""
        paths = self._paths()
        if last is not None:
            paths = paths[max(len(paths) - last, 0):]
        out = []
        for path in paths:
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError) as error:
                out.append({"at": path.name[:22], "action": "unreadable event", "user": "",
                            "details": {"file": path.name, "error": str(error)}})
        return out

    def latest(self, actions: Collection[str]) -> dict | None:
        """The newest readable event whose action is one of ``actions`` (files read newest first, up
        to it), or None."""
        for path in reversed(self._paths()):
            try:
                event = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if event.get("action") in actions:
                return event
        return None

    def _paths(self) -> list[Path]:
        """The event files, oldest first (by name: by time); a write in progress (a "." file) is not one."""
        return sorted(self.folder.glob("[!.]*.json"))

    def record_unrecorded_submissions(self, cases: Sequence[Mapping[str, Any]],
                                      before: datetime) -> list[str]:
        """Record a :data:`LATE_SUBMISSION` event for each of ``cases`` (a store's newest, as
        ``CaseStore.recent`` lists them) stored before ``before`` (this process's start) that no
        submission event names: none was written when it was stored (a kill between storing the case
        and recording it, a fault probe saw 5 in 226 kills; or an audit log that could not be written).
        Who submitted it was not recorded, and the event says so. Only events
        as far back as :data:`EVENTS_READ_FOR_SUBMISSIONS` reach are read, and only cases they cover
        are judged. Returns the ids recorded."""
        events = self.events(last=EVENTS_READ_FOR_SUBMISSIONS)
        named = {case for event in events if event.get("action") in SUBMITTING_ACTIONS
                 for case in _cases_named(event.get("details") or {})}
        reach = _moment(events[0]["at"]) if len(events) == EVENTS_READ_FOR_SUBMISSIONS else _EARLIEST
        missing = [case for case in cases if case["case_id"] not in named
                   and reach < _moment(case["submitted_at"]) < before]
        for case in sorted(missing, key=lambda case: case["submitted_at"]):
            self.record(LATE_SUBMISSION, SUBMITTER_NOT_RECORDED, case_id=case["case_id"], label=case["label"],
                        submitted_at=case["submitted_at"])
        return [case["case_id"] for case in missing]

    def csv(self) -> str:
        """Every event as CSV (details as JSON), oldest first."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(AUDIT_COLUMNS)
        for event in self.events():
            writer.writerow([event["at"], event["action"], event["user"],
                             json.dumps(event["details"], sort_keys=True)])
        return buffer.getvalue()


def _cases_named(details: Mapping[str, Any]) -> list[str]:
    return [details["case_id"]] if details.get("case_id") else list(details.get("case_ids") or [])


def _moment(stamp: str | None) -> datetime:
    """An event's or a case's time as an aware datetime in UTC; the earliest one when it is none."""
    moment = utc_moment(stamp)
    return moment if moment is not None and moment.tzinfo else _EARLIEST


def open_audit_log(settings: Settings, cases: CaseStore) -> AuditLog:
    """The audit log of this store (``<MAMMO_HOME>/audit``), mirrored to the dataset repo when the
    cases are on the Hub."""
    mirror = functools.partial(cases.outbox.queue_file, "audit") if cases.outbox else None
    return AuditLog(settings.home / "audit", mirror)
