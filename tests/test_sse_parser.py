"""The upstream SSE parser: whatever way the bytes are cut, the same events come out."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from app.ai.http import SSEParser

STREAM = (
    b": a comment\n"
    b"event: content_block_delta\n"
    b'data: {"a": 1}\n'
    b"\n"
    b"data: first line\r\n"
    b"data:second line\r\n"
    b"\r\n"
    b"id: 7\rdata: caf\xc3\xa9\r\r"
    b"event: empty\n\n"
    b"data: [DONE]\n\n"
)
EVENTS = [
    ("content_block_delta", '{"a": 1}'),
    ("message", "first line\nsecond line"),
    ("message", "café"),
    ("message", "[DONE]"),
]


def parse(pieces: list[bytes]) -> list[tuple[str, str]]:
    parser = SSEParser()
    events = []
    for piece in pieces:
        events += parser.feed(piece)
    return events + parser.close()


def test_whole_stream() -> None:
    assert parse([STREAM]) == EVENTS


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    assert parse([STREAM[a:b] for a, b in itertools.pairwise(points)]) == EVENTS


def test_byte_by_byte_including_a_multibyte_character() -> None:
    assert parse([STREAM[i : i + 1] for i in range(len(STREAM))]) == EVENTS


def test_a_stream_ending_without_a_blank_line_still_gives_its_last_event() -> None:
    assert parse([b"data: tail"]) == [("message", "tail")]
    assert parse([b"data: tail\r"]) == [("message", "tail")]
    assert parse([b": only a comment"]) == []
