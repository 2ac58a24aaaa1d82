"""Timestamps as people read them: one format for the page, the receipts and the store's messages."""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["human_time"]


def human_time(stamp: str | None) -> str:
    """An ISO 8601 timestamp as '30 Nov 2026, 09:29 UTC' (the input when it is not one)."""
    if not stamp:
        return "—"
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"
