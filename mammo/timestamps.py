"""Timestamps as people read them: one format for the page, the receipts and the store's messages."""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["human_time", "utc_moment"]


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
