"""The shared readers of client input: numbers, JSON, dates."""

from __future__ import annotations

import json
import time

import pytest

from app.errors import BadRequest
from app.validation import MAX_JSON_DEPTH, ascii_int, parse_json


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


def test_json_nested_to_the_limit_is_read() -> None:
    deepest = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(deepest.encode()) == json.loads(deepest)
    mixed = '{"a": [{"b": [1, {"c": []}]}], "d": "x"}'
    assert parse_json(mixed.encode())["d"] == "x"


@pytest.mark.parametrize(
    "text",
    [
        # Brackets inside strings are text, escaped quotes and all.
        '["' + "[" * 100 + '"]',
        '["\\"' + "{" * 100 + '", "\\\\", "]]]]"]',
        '{"faq": [' + ", ".join(['{"question": "[[[[", "answer": "{{{{"}'] * 50) + "]}",
        '["é", "日本", "' + "[" * 40 + '"]',
    ],
)
def test_brackets_in_strings_do_not_count(text: str) -> None:
    assert parse_json(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested"),
        (b"[" * 60_000, "nested"),
        (b'{"a": ' * 20_000 + b"1" + b"}" * 20_000, "nested"),
        (b"[{}" * 40 + b"]" * 40, "nested"),
        (b'{"n": NaN}', "not valid JSON"),
        (b"[Infinity, -Infinity]", "not valid JSON"),
        (b"1" + b"0" * 5000, "not valid JSON"),
        (b'"\xff"', "not UTF-8"),
    ],
)
def test_json_that_is_not_plain_or_too_deep_is_refused(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_json(raw)
    assert refused.value.code == "invalid_json"
    assert message in refused.value.message


def test_measuring_the_nesting_of_a_whole_body_is_quick() -> None:
    started = time.perf_counter()
    for raw in (b"[]" * 32_000, b"[" * 64_000, b'["' + b'\\"' * 20_000 + b'"]'):
        try:
            parse_json(raw)
        except BadRequest:
            pass
    assert time.perf_counter() - started < 0.5
