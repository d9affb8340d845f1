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


# Lines of a stream with LF endings only, as models send them: whole events in a read take
# the parser's short way (one `data:` line each), the rest its line-by-line way.
LINE = st.one_of(
    st.builds(lambda t: b"data: " + t.encode(), st.text(max_size=8)),
    st.builds(lambda t: b"data:" + t.encode(), st.text(max_size=8)),
    st.sampled_from([b"event: content_block_delta", b"event: ping", b": keep-alive", b"id: 7"]),
    st.just(b""),
    st.just(b"data: [DONE]"),
)


@given(
    st.lists(LINE, max_size=20).map(lambda lines: b"\n".join(lines) + b"\n\n"),
    st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_whole_events_read_at_once_give_what_line_by_line_gives(
    stream: bytes, cuts: list[int]
) -> None:
    one_by_one = parse([stream[i : i + 1] for i in range(len(stream))])
    assert parse([stream]) == one_by_one
    points = [0, *sorted(c for c in cuts if c <= len(stream)), len(stream)]
    assert parse([stream[a:b] for a, b in itertools.pairwise(points)]) == one_by_one
    # Event after event, each read whole (as a model's chunks come).
    events = [block + b"\n\n" for block in stream.split(b"\n\n") if block]
    assert parse(events) == parse([b"".join(events)])


def test_an_event_name_read_before_its_data_names_the_event() -> None:
    assert parse([b"event: ping\n", b"data: x\n\n", b"data: y\n\n"]) == [
        ("ping", "x"),
        ("message", "y"),
    ]
