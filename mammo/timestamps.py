"""Timestamps as people read them: one format for the page, the receipts and the store's messages."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

__all__ = ["NAME_TIME", "human_time", "time_name", "utc_moment"]

NAME_TIME = "%Y%m%dT%H%M%S%fZ"  # how a stored file's name starts: its UTC time, to the microsecond


def time_name(moment: datetime, random_chars: int = 8) -> str:
    """``<moment as NAME_TIME>-<random hex>``: a new stored file's name (a shard, an audit event, an
    amendment, a rejected candidate), sorting by time, apart from one made in the same microsecond."""
    return f"{moment:{NAME_TIME}}-{uuid.uuid4().hex[:random_chars]}"


def utc_moment(stamp: str | None) -> datetime | None:
    """An ISO 8601 timestamp as a datetime in UTC (one without a zone is taken as UTC already); None
    when it is not one."""
    try:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment


def human_time(stamp: str | None) -> str:
    """An ISO 8601 timestamp as '30 Nov 2026, 09:29 UTC' (the input when it is not one)."""
    if not stamp:
        return "—"
    moment = utc_moment(stamp)
    return stamp if moment is None else f"{moment.day} {moment:%b %Y, %H:%M} UTC"
