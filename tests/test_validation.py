"""The shared readers of client input: numbers, JSON, dates."""

from __future__ import annotations

import pytest

from app.validation import ascii_int


@pytest.mark.parametrize("raw,value", [("0", 0), ("7", 7), ("0042", 42), ("9" * 18, 10**18 - 1)])
def test_ascii_digits_are_read(raw: str, value: int) -> None:
    assert ascii_int(raw, low=0, high=10**18) == value


@pytest.mark.parametrize(
    "raw",
    ["", "²", "١٢", "１２", "𝟗", "-1", "+1", " 1", "1 ", "1_0", "1e3", "0x1", "9" * 19, "9" * 5000],
)
def test_anything_else_is_not_a_number(raw: str) -> None:
    assert ascii_int(raw, low=0, high=10**18) is None


def test_the_range_is_inclusive() -> None:
    assert ascii_int("1", low=1, high=100) == 1
    assert ascii_int("100", low=1, high=100) == 100
    assert ascii_int("0", low=1, high=100) is None
    assert ascii_int("101", low=1, high=100) is None
