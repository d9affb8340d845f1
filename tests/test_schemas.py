"""The shapes are the one place limits live: what /openapi.json says of a field is what the
API enforces, and what the API sends (a reply's events, its answers) is what it declares."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from app import limits, repo
from app.catalog.products import from_rest
from app.db import Database
from app.errors import ApiError
from app.openapi import DOCUMENT
from app.schemas import merchant, settings, storefront
from app.schemas.fields import Error, Shape, read, refusal
from app.streaming import UNREADABLE, _ending, sse
from app.validation import is_uuid4
from tests.catalog_data import rest_product
from tests.factories import ProxyClient, new_id, shop_id_of

SCHEMAS = DOCUMENT["components"]["schemas"]
SESSION = "6f1c1d0e-1111-4111-8111-111111111111"


def _parameter(path: str, method: str, name: str) -> dict[str, Any]:
    parameters = DOCUMENT["paths"][path][method]["parameters"]
    return next(p["schema"] for p in parameters if p["name"] == name)


def _refused(shape: type[Shape], data: dict[str, Any], **context: Any) -> ApiError:
    with pytest.raises(ApiError) as refused:
        read(shape, data, **context)
    return refused.value


@pytest.mark.parametrize(
    "path,shape,limit,also",
    [
        ("/proxy/history", storefront.HistoryQuery, limits.HISTORY_LIMIT, {"session_id": SESSION}),
        ("/api/admin/conversations", merchant.ConversationsQuery, limits.CONVERSATIONS_LIMIT, {}),
        (
            "/api/admin/conversations/{conversation_id}",
            merchant.TranscriptQuery,
            limits.TRANSCRIPT_LIMIT,
            {},
        ),
    ],
)
def test_a_documented_page_size_is_the_one_enforced(
    path: str, shape: type[Shape], limit: limits.Limit, also: dict[str, str]
) -> None:
    documented = _parameter(path, "get", "limit")
    assert (documented["minimum"], documented["maximum"]) == (limit.low, limit.high)
    assert read(shape, also).limit == limit.default
    for value in (limit.low, limit.high):
        assert read(shape, {**also, "limit": str(value)}).limit == value
    for value in (limit.low - 1, limit.high + 1):
        assert _refused(shape, {**also, "limit": str(value)}).code == "invalid_limit"


def test_a_documented_message_length_is_the_one_enforced() -> None:
    documented = SCHEMAS["MessageBody"]["properties"]["message"]["maxLength"]
    assert documented == limits.MAX_MESSAGE_CHARS
    body = {"session_id": SESSION, "message": "x" * documented}
    assert read(storefront.MessageBody, body).message == body["message"]
    too_long = _refused(storefront.MessageBody, {**body, "message": "x" * (documented + 1)})
    assert (too_long.code, too_long.status_code) == ("message_too_long", 413)


@pytest.mark.parametrize(
    "name,code",
    [("greeting", "invalid_greeting"), ("system_prompt", "invalid_system_prompt")],
)
def test_documented_setting_lengths_are_the_ones_enforced(name: str, code: str) -> None:
    documented = SCHEMAS["SettingsBody"]["properties"][name]["maxLength"]
    assert getattr(read(settings.SettingsBody, {name: "x" * documented}), name)
    assert _refused(settings.SettingsBody, {name: "x" * (documented + 1)}).code == code


def test_documented_retention_days_are_the_ones_enforced() -> None:
    documented = SCHEMAS["SettingsBody"]["properties"]["retention_days"]
    low, high = documented["minimum"], documented["maximum"]
    assert (low, high) == (limits.MIN_RETENTION_DAYS, limits.MAX_RETENTION_DAYS) == (1, 3650)
    for days in (low, high, None):
        assert read(settings.SettingsBody, {"retention_days": days}).retention_days == days
    for days in (low - 1, high + 1, True, "30"):
        refused = _refused(settings.SettingsBody, {"retention_days": days})
        assert refused.code == "invalid_retention_days"


def test_the_documented_faq_limits_are_the_ones_enforced() -> None:
    faq = SCHEMAS["SettingsBody"]["properties"]["faq"]
    entry = SCHEMAS["FaqEntry"]["properties"]
    most, question, answer = (
        faq["maxItems"],
        entry["question"]["maxLength"],
        entry["answer"]["maxLength"],
    )
    assert (most, question, answer) == (
        limits.MAX_FAQ_ENTRIES,
        limits.MAX_FAQ_QUESTION_CHARS,
        limits.MAX_FAQ_ANSWER_CHARS,
    )
    longest = {"question": "q" * question, "answer": "a" * answer}
    assert (
        read(settings.SettingsBody, {"faq": [longest] * most}).faq_entries()
        == [("q" * question, "a" * answer)] * most
    )
    for refused in (
        [longest] * (most + 1),
        [{**longest, "question": "q" * (question + 1)}],
        [{**longest, "answer": "a" * (answer + 1)}],
    ):
        assert _refused(settings.SettingsBody, {"faq": refused}).code == "invalid_faq"


def test_the_documented_colour_is_the_one_enforced() -> None:
    pattern = SCHEMAS["SettingsBody"]["properties"]["accent_color"]["pattern"]
    assert pattern == limits.COLOR_PATTERN
    assert read(settings.SettingsBody, {"accent_color": "#1F5F8B"}).accent_color == "#1f5f8b"
    for color in ("red", "#1f5f8", "#1f5f8bb", "#gggggg"):
        assert not re.fullmatch(pattern, color)
        assert _refused(settings.SettingsBody, {"accent_color": color}).code == (
            "invalid_accent_color"
        )


def test_only_the_operators_models_may_be_chosen() -> None:
    body = settings.SettingsBody
    assert read(body, {"ai_model": "small"}, models=("small",)).ai_model == "small"
    assert _refused(body, {"ai_model": "big"}, models=("small",)).code == "invalid_ai_model"


@pytest.mark.parametrize(
    "value",
    [SESSION, SESSION.upper(), "x", SESSION[:-1], SESSION.replace("-4", "-1", 1), " " + SESSION],
)
def test_the_documented_uuid_is_the_one_enforced(value: str) -> None:
    pattern = _parameter("/proxy/history", "get", "session_id")["pattern"]
    assert pattern == limits.UUID4_PATTERN
    documented = bool(re.fullmatch(pattern, value))
    try:
        read(storefront.SessionBody, {"session_id": value})
    except ApiError as refused:
        assert refused.code == "invalid_session_id"
        assert not documented
    else:
        assert documented and is_uuid4(value.lower())


@pytest.mark.parametrize("name,day", [("from", limits.EARLIEST_DATE), ("to", limits.LATEST_DATE)])
def test_the_documented_dates_are_the_ones_enforced(name: str, day: Any) -> None:
    pattern = _parameter("/api/admin/export", "get", name)["pattern"]
    assert pattern == limits.DATE_PATTERN
    assert read(merchant.ExportQuery, {name: day.isoformat()}).model_dump()[f"date_{name}"] == day
    beyond = day.replace(year=day.year + (1 if name == "to" else -1)).isoformat()
    assert _refused(merchant.ExportQuery, {name: beyond}).code == f"invalid_{name}"


def test_a_check_of_pydantics_own_is_an_api_error_of_the_field() -> None:
    with pytest.raises(ValidationError) as refused:
        storefront.Stopped.model_validate({"assistant_message_id": 5})
    error = refusal(refused.value)
    assert (error.status_code, error.code) == (400, "invalid_assistant_message_id")


def test_every_error_and_ending_the_stream_writes_has_its_declared_shape() -> None:
    Error.model_validate({"error": {"code": "x", "message": "y"}})
    for chunk in (
        _ending(SESSION, "error", None, "interrupted"),
        _ending(SESSION, "stopped", None, None),
        _ending(SESSION, "complete", "length", None),
        sse("error", UNREADABLE | {"assistant_message_id": SESSION}),
        sse("error", {"code": "not_found", "message": "The reply no longer exists."}),
    ):
        event, data = re.fullmatch(r"event: (\w+)\ndata: (.*)\n\n", chunk.decode(), re.S).groups()
        storefront.EVENTS[event].model_validate(json.loads(data))


async def test_every_event_a_live_reply_sends_has_its_declared_shape(
    client: ProxyClient, db: Database
) -> None:
    product = rest_product(title="Merino Crew Sweater", handle="merino-crew")
    record = from_rest(product, storefront_url=f"https://{client.shop}", currency="USD")
    shop_id = await shop_id_of(db, client.shop)
    async with db.session() as session:
        await repo.store_product(session, shop_id=shop_id, record=record)
    session_id = new_id()
    turn = await client.send(
        session_id, "Do you have this in medium?", context={"product": "merino-crew"}
    )
    resumed = await client.resume(session_id, turn.first("start").data["assistant_message_id"])
    events = [*turn.events, *resumed.events]
    assert {"start", "delta", "products", "done"} <= {e.event for e in events}
    for event in events:
        shape = storefront.EVENTS[event.event]
        assert shape.model_validate(event.data).model_dump(exclude_unset=True) == event.data
    history = (await client.history(session_id)).json()
    assert (
        storefront.History.model_validate(history).model_dump(
            exclude={"messages": {"__all__": {"tools"}}}
        )
        == history
    )
