"""Whole numbers, yes/no and short quotes as forms and API callers send them (mammo.values)."""

from __future__ import annotations

import numpy as np
import pytest

from mammo.values import echoed, whole_number, yes_or_no


@pytest.mark.parametrize(("given", "number"), [
    (5, 5), (np.int64(5), 5), (3.0, 3), (np.float32(3.0), 3), (-0.0, 0), (" 12 ", 12), ("+7", 7), ("-7", -7),
    ("9" * 30, int("9" * 30)),
    (2.5, None), (float("nan"), None), (float("inf"), None), ("3.0", None), ("twelve", None), ("", None),
    (True, None), (np.bool_(True), None), (None, None), ([3], None), ("9" * 31, None), ("\u00b2", None)])
def test_whole_number(given: object, number: int | None) -> None:
    assert whole_number(given) == number


@pytest.mark.parametrize(("given", "said"), [
    (True, True), (False, False), (np.bool_(False), False), (1, True), (0, False), (np.int64(0), False),
    ("yes", True), (" No ", False), ("TRUE", True), ("false", False), ("y", True), ("n", False), ("1", True),
    ("0", False),
    ("maybe", None), ("", None), (2, None), (0.5, None), (None, None), ("falsey", None)])
def test_yes_or_no(given: object, said: bool | None) -> None:
    assert yes_or_no(given) is said


def test_echoed_quotes_anything_short() -> None:
    assert echoed("v1") == "'v1'" and echoed(2.5) == "2.5"
    assert echoed("x" * 100_000) == "'" + "x" * 36 + "..." and len(echoed("x" * 100_000, limit=120)) == 120
    assert echoed(10**5000) == "a number of over 4300 digits"  # Python gives no repr of it
