"""The merchant's JSON API: session tokens, one shop's data only, and every endpoint."""

from __future__ import annotations

import base64
import csv
import io
import json
import time
from datetime import timedelta

import httpx
import jwt
import pytest
import sqlalchemy as sa

from app.db import Database
from app.models import Conversation, utcnow
from tests.factories import (
    TEST_API_KEY,
    TEST_API_SECRET,
    AdminClient,
    ProxyClient,
    add_messages,
    make_shop,
    new_id,
    session_token,
)
from tests.servers import LiveServer, free_port


async def _chat(server: LiveServer, shop: str, *messages: str, customer: str | None = None) -> str:
    session_id = new_id()
    async with ProxyClient(server.url, shop, customer_id=customer) as storefront:
        for message in messages:
            assert (await storefront.send(session_id, message)).last.event == "done"
    return session_id


async def _conversation_id(db: Database, shop: str, session_id: str) -> str:
    async with db.session() as session:
        from app import repo

        installed = await repo.get_shop(session, domain=shop)
        found = await repo.session_conversation(
            session, shop_id=installed.id, session_id=session_id
        )
    return found.public_id


# ---- session tokens -------------------------------------------------------------------


@pytest.mark.parametrize(
    "problem", ["missing", "not_bearer", "secret", "audience", "expired", "garbage", "shop"]
)
async def test_bad_session_tokens_are_401_with_the_retry_header(
    server: LiveServer, db: Database, problem: str
) -> None:
    shop = await make_shop(db)
    headers = {
        "missing": {},
        "not_bearer": {"Authorization": session_token(shop)},
        "secret": {
            "Authorization": "Bearer "
            + session_token(shop, secret="another-apps-secret-0123456789abcdef")
        },
        "audience": {"Authorization": "Bearer " + session_token(shop, audience="another-app")},
        "expired": {"Authorization": "Bearer " + session_token(shop, lifetime=-30)},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "shop": {"Authorization": "Bearer " + session_token("evil.example.com")},
    }[problem]
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/api/admin/conversations", headers=headers)
    assert response.status_code in (401, 403)
    if response.status_code == 401:
        assert response.headers["x-shopify-retry-invalid-session-request"] == "1"
    assert response.json()["error"]["message"]


def _token_without(shop: str, *claims: str, **changes: object) -> str:
    """A correctly signed session token lacking some claims or with others changed."""
    payload = jwt.decode(
        session_token(shop), TEST_API_SECRET, algorithms=["HS256"], audience=TEST_API_KEY
    )
    for name in claims:
        payload.pop(name)
    payload.update(changes)
    return jwt.encode(payload, TEST_API_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    "problem,code",
    [
        ("no_exp", "missing_exp"),
        ("no_nbf", "missing_nbf"),
        ("iss_of_another_shop", "invalid_iss"),
        ("no_iss", "invalid_iss"),
        ("in_the_url", "missing_authorization"),
        ("not_yet_valid", "invalid_id_token"),
    ],
)
async def test_session_tokens_must_expire_name_one_shop_and_come_in_the_header(
    server: LiveServer, db: Database, problem: str, code: str
) -> None:
    shop, other = await make_shop(db), await make_shop(db)
    token = {
        "no_exp": _token_without(shop, "exp"),
        "no_nbf": _token_without(shop, "nbf"),
        "iss_of_another_shop": _token_without(shop, iss=f"https://{other}/admin"),
        "no_iss": _token_without(shop, "iss"),
        "in_the_url": session_token(shop),
        "not_yet_valid": _token_without(shop, nbf=int(time.time()) + 120),
    }[problem]
    async with httpx.AsyncClient(base_url=server.url) as client:
        if problem == "in_the_url":
            response = await client.get("/api/admin/conversations", params={"id_token": token})
        else:
            response = await client.get(
                "/api/admin/conversations", headers={"Authorization": f"Bearer {token}"}
            )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == code
    assert response.headers["x-shopify-retry-invalid-session-request"] == "1"


async def test_token_just_expired_is_within_the_leeway(server: LiveServer, db: Database) -> None:
    shop = await make_shop(db)
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get(
            "/api/admin/conversations",
            headers={"Authorization": "Bearer " + session_token(shop, lifetime=-5)},
        )
    assert response.status_code == 200


async def test_a_merchant_sees_and_deletes_only_their_own_shop(
    server: LiveServer, db: Database
) -> None:
    mine, theirs = await make_shop(db), await make_shop(db)
    secret = await _chat(server, theirs, "their private question")
    their_id = await _conversation_id(db, theirs, secret)
    async with AdminClient(server.url, mine) as merchant:
        listed = (await merchant.get("/api/admin/conversations")).json()["conversations"]
        assert listed == []
        assert (await merchant.get(f"/api/admin/conversations/{their_id}")).status_code == 404
        assert (await merchant.delete(f"/api/admin/conversations/{their_id}")).status_code == 404
        export = await merchant.get("/api/admin/export", format="jsonl")
        assert export.text == ""
        stats = (await merchant.get("/api/admin/stats")).json()
        assert stats["conversations_total"] == 0
    async with AdminClient(server.url, theirs) as owner:
        assert (await owner.get(f"/api/admin/conversations/{their_id}")).status_code == 200


# ---- conversations --------------------------------------------------------------------


async def test_list_search_filter_and_paginate(server: LiveServer, db: Database) -> None:
    shop = await make_shop(db)
    sessions = [await _chat(server, shop, f"question number {i}") for i in range(5)]
    parcel = await _chat(server, shop, "Where is my PARCEL 100%_done?")
    async with db.session() as session:
        await session.execute(
            sa.update(Conversation)
            .where(Conversation.session_id == sessions[0])  # type: ignore[arg-type]
            .values(status="ended", created_at=utcnow() - timedelta(days=10))
        )
    async with AdminClient(server.url, shop) as merchant:
        first = (await merchant.get("/api/admin/conversations", limit="3")).json()
        assert len(first["conversations"]) == 3
        assert first["conversations"][0]["preview"] == "Where is my PARCEL 100%_done?"
        assert first["conversations"][0]["message_count"] == 2
        rest = (
            await merchant.get("/api/admin/conversations", limit="3", cursor=first["next_cursor"])
        ).json()
        assert len(rest["conversations"]) == 3 and rest["next_cursor"] is None
        everything = first["conversations"] + rest["conversations"]
        assert len({c["id"] for c in everything}) == 6, "no conversation twice, none missed"
        created = [c["created_at"] for c in everything]
        assert created == sorted(created, reverse=True), "newest first"

        found = (await merchant.get("/api/admin/conversations", q="parcel 100%_")).json()
        assert [c["preview"] for c in found["conversations"]] == ["Where is my PARCEL 100%_done?"]
        assert (await merchant.get("/api/admin/conversations", q="100%x")).json()[
            "conversations"
        ] == [], "% and _ are literal"
        answered = (await merchant.get("/api/admin/conversations", q="could not find")).json()
        assert len(answered["conversations"]) == 6, "assistant text is searched too"

        ended = (await merchant.get("/api/admin/conversations", status="ended")).json()
        assert [c["preview"] for c in ended["conversations"]] == ["question number 0"]
        today = utcnow().date().isoformat()
        recent = (await merchant.get("/api/admin/conversations", **{"from": today})).json()
        assert len(recent["conversations"]) == 5
        old_day = (utcnow() - timedelta(days=10)).date().isoformat()
        old = (await merchant.get("/api/admin/conversations", to=old_day)).json()
        assert [c["preview"] for c in old["conversations"]] == ["question number 0"]
    assert parcel


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "params,code",
    [
        ({"status": "deleted"}, "invalid_status"),
        ({"from": "yesterday"}, "invalid_from"),
        ({"to": "2026-13-01"}, "invalid_to"),
        # The end of the `to` day overflowed datetime: a 500.
        ({"to": "9999-12-31"}, "invalid_to"),
        ({"from": "0001-01-01"}, "invalid_from"),
        ({"to": "2101-01-01"}, "invalid_to"),
        ({"from": "20261121"}, "invalid_from"),
        ({"from": "2026-W47-6"}, "invalid_from"),
        ({"to": "２０２６-01-01"}, "invalid_to"),
        ({"customer_id": "²"}, "invalid_customer_id"),
        ({"customer_id": "1" * 65}, "invalid_customer_id"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "²"}, "invalid_limit"),
        ({"limit": "１０"}, "invalid_limit"),
        ({"limit": "9" * 5000}, "invalid_limit"),
        ({"cursor": "!!!"}, "invalid_cursor"),
        # An id beyond 64 bits overflowed the database's integer: a 500.
        (
            {"cursor": _cursor("2026-01-01T00:00:00+00:00|99999999999999999999999")},
            "invalid_cursor",
        ),
        ({"cursor": _cursor("2026-01-01T00:00:00+00:00|9223372036854775808")}, "invalid_cursor"),
        # asyncpg moved this to UTC, past the year 9999: a 500 on PostgreSQL.
        ({"cursor": _cursor("9999-12-31T23:59:59-05:00|5")}, "invalid_cursor"),
        ({"cursor": _cursor("2026-01-01T00:00:00+00:00|²")}, "invalid_cursor"),
        ({"cursor": "A" * 5000}, "invalid_cursor"),
        ({"q": "x" * 201}, "invalid_q"),
    ],
)
async def test_bad_list_parameters_are_400(
    server: LiveServer, db: Database, params: dict[str, str], code: str
) -> None:
    async with AdminClient(server.url, await make_shop(db)) as merchant:
        response = await merchant.get("/api/admin/conversations", **params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": _cursor(f"9999-12-31T23:59:59+00:00|{2**63 - 1}")},
        {"cursor": _cursor("9999-12-31T23:59:59.999999+00:00|1")},
        {"from": "2000-01-01", "to": "2100-12-31"},
        {"customer_id": "9" * 64},
    ],
)
async def test_list_parameters_at_their_limits_are_read(
    server: LiveServer, db: Database, params: dict[str, str]
) -> None:
    shop = await make_shop(db)
    await _chat(server, shop, "hello", customer="9" * 64)
    async with AdminClient(server.url, shop) as merchant:
        response = await merchant.get("/api/admin/conversations", **params)
    assert response.status_code == 200
    assert len(response.json()["conversations"]) == 1


async def test_transcript_and_delete(server: LiveServer, db: Database) -> None:
    shop = await make_shop(db, faq=[("Do you gift wrap?", "Yes, for free.")])
    session_id = await _chat(server, shop, "Do you gift wrap?", "thanks!", customer="31")
    conversation_id = await _conversation_id(db, shop, session_id)
    async with AdminClient(server.url, shop) as merchant:
        detail = (await merchant.get(f"/api/admin/conversations/{conversation_id}")).json()
        assert detail["conversation"]["customer_id"] == "31"
        assert [(m["role"], m["content"]) for m in detail["messages"]][:2] == [
            ("user", "Do you gift wrap?"),
            ("assistant", "Yes, for free."),
        ]
        assert (await merchant.get("/api/admin/conversations/not-a-uuid")).status_code == 400
        assert (
            await merchant.delete(f"/api/admin/conversations/{conversation_id}")
        ).status_code == 204
        assert (
            await merchant.get(f"/api/admin/conversations/{conversation_id}")
        ).status_code == 404
        assert (
            await merchant.delete(f"/api/admin/conversations/{conversation_id}")
        ).status_code == 404
    async with ProxyClient(server.url, shop, customer_id="31") as storefront:
        history = (await storefront.history(session_id)).json()
    assert history["messages"] == [] and history["status"] == "unknown"


async def test_a_transcript_comes_a_page_at_a_time(server: LiveServer, db: Database) -> None:
    shop = await make_shop(db)
    session_id = await _chat(server, shop, "The first question")
    added = await add_messages(db, shop, session_id, 248)
    conversation_id = await _conversation_id(db, shop, session_id)
    path = f"/api/admin/conversations/{conversation_id}"
    async with AdminClient(server.url, shop) as merchant:
        first = (await merchant.get(path)).json()
        assert len(first["messages"]) == 200, "a page of 200 unless asked otherwise"
        assert first["messages"][0]["content"] == "The first question"
        assert first["next_after"] == first["messages"][-1]["id"] == added[197]
        pages = [first]
        while pages[-1]["next_after"]:
            page = await merchant.get(path, limit="20", after=pages[-1]["next_after"])
            assert page.status_code == 200
            pages.append(page.json())
        assert [len(p["messages"]) for p in pages] == [200, 20, 20, 10]
        assert all(p["conversation"]["id"] == conversation_id for p in pages)
        ids = [m["id"] for p in pages for m in p["messages"]]
        assert ids[2:] == added, "every message once, oldest first"

        last = await merchant.get(path, limit="500", after=added[-1])
        assert last.json()["messages"] == [] and last.json()["next_after"] is None
        elsewhere = await _conversation_id(db, shop, await _chat(server, shop, "elsewhere"))
        other = (await merchant.get(f"/api/admin/conversations/{elsewhere}")).json()
        crossed = (await merchant.get(path, after=other["messages"][0]["id"])).json()
        assert crossed["messages"] == [], "after is a message of this conversation or nothing"
        for params, code in (
            ({"limit": "0"}, "invalid_limit"),
            ({"limit": "501"}, "invalid_limit"),
            ({"after": "yesterday"}, "invalid_after"),
        ):
            response = await merchant.get(path, **params)
            assert response.status_code == 400 and response.json()["error"]["code"] == code


# ---- stats ----------------------------------------------------------------------------


async def test_stats(server: LiveServer, db: Database) -> None:
    shop = await make_shop(db)
    await _chat(server, shop, "Do you ship to Canada?", "ok")
    await _chat(server, shop, "do you ship to canada")
    old = await _chat(server, shop, "What sizes?")
    async with db.session() as session:
        await session.execute(
            sa.update(Conversation)
            .where(Conversation.session_id == old)  # type: ignore[arg-type]
            .values(status="abandoned", created_at=utcnow() - timedelta(days=8))
        )
    async with AdminClient(server.url, shop) as merchant:
        stats = (await merchant.get("/api/admin/stats")).json()
    assert stats["conversations_total"] == 3
    assert stats["conversations_today"] == 2
    assert stats["conversations_this_week"] == 2
    assert stats["messages_total"] == 8
    assert stats["average_messages_per_conversation"] == 2.7
    assert stats["abandonment_rate"] == pytest.approx(1 / 3, abs=0.001)
    assert stats["top_questions"][0] == {"question": "Do you ship to Canada?", "count": 2}
    assert len(stats["per_day"]) == 30
    assert stats["per_day"][-1] == {"date": utcnow().date().isoformat(), "conversations": 2}


# ---- settings -------------------------------------------------------------------------


async def test_settings_round_trip_and_reach_the_assistant(
    server: LiveServer, db: Database
) -> None:
    shop = await make_shop(db)
    async with AdminClient(server.url, shop) as merchant:
        before = (await merchant.get("/api/admin/settings")).json()
        assert before["greeting"] is None and before["defaults"]["greeting"]
        saved = await merchant.put(
            "/api/admin/settings",
            {
                "greeting": "  Hello from the hat shop!  ",
                "accent_color": "#AA3300",
                "system_prompt": "You sell hats.",
                "ai_provider": "offline",
                "ai_model": "offline-faq",
                "retention_days": 90,
                "faq": [{"question": "Do you sell berets?", "answer": "Yes, in six colours."}],
            },
        )
        assert saved.status_code == 200, saved.text
        body = saved.json()
        assert body["greeting"] == "Hello from the hat shop!"
        assert body["accent_color"] == "#aa3300"
        assert body["retention_days"] == 90 and body["ai_provider"] == "offline"
        assert body["faq"] == [
            {"question": "Do you sell berets?", "answer": "Yes, in six colours."}
        ]
        assert (await merchant.get("/api/admin/settings")).json()["faq"] == body["faq"]
        cleared = (await merchant.put("/api/admin/settings", {"retention_days": None})).json()
        assert cleared["retention_days"] is None and cleared["greeting"] == body["greeting"]
    async with ProxyClient(server.url, shop) as storefront:
        turn = await storefront.send(new_id(), "any berets?")
    assert turn.text == "Yes, in six colours."


@pytest.mark.parametrize(
    "body,code",
    [
        ({"accent_color": "red"}, "invalid_accent_color"),
        ({"greeting": "x" * 201}, "invalid_greeting"),
        ({"greeting": 5}, "invalid_greeting"),
        ({"retention_days": 0}, "invalid_retention_days"),
        ({"retention_days": "30"}, "invalid_retention_days"),
        ({"retention_days": True}, "invalid_retention_days"),
        ({"ai_provider": "gpt"}, "invalid_ai_provider"),
        ({"ai_model": "gpt-5-on-your-bill"}, "invalid_ai_model"),
        ({"faq": "questions"}, "invalid_faq"),
        ({"faq": [{"question": "Only a question"}]}, "invalid_faq"),
        ({"faq": [{"question": "q", "answer": "a"}] * 101}, "invalid_faq"),
    ],
)
async def test_bad_settings_are_400_and_change_nothing(
    server: LiveServer, db: Database, body: dict, code: str
) -> None:
    shop = await make_shop(db)
    async with AdminClient(server.url, shop) as merchant:
        before = (await merchant.get("/api/admin/settings")).json()
        response = await merchant.put("/api/admin/settings", {"greeting": "changed", **body})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == code
        assert (await merchant.get("/api/admin/settings")).json() == before


async def test_offline_setting_keeps_the_shop_off_the_ai_service(
    start_server, db: Database
) -> None:
    broken_ai = start_server(
        ai_provider="openai",
        ai_base_url=f"http://127.0.0.1:{free_port()}",
        ai_api_key="k",
        ai_model="m",
    )
    shop = await make_shop(db, faq=[("Do you ship abroad?", "Yes, to 40 countries.")])
    async with ProxyClient(broken_ai.url, shop) as storefront:
        failed = await storefront.send(new_id(), "do you ship abroad?")
        assert failed.last.data["code"] == "upstream_unavailable"
        async with AdminClient(broken_ai.url, shop) as merchant:
            await merchant.put("/api/admin/settings", {"ai_provider": "offline"})
        answered = await storefront.send(new_id(), "do you ship abroad?")
    assert answered.text == "Yes, to 40 countries."


# ---- export ---------------------------------------------------------------------------


async def test_export_csv_and_jsonl(server: LiveServer, db: Database) -> None:
    shop = await make_shop(db)
    first = await _chat(server, shop, '=HYPERLINK("http://evil")', customer="5")
    second = await _chat(server, shop, 'Plain, "quoted"\nmultiline question')
    async with AdminClient(server.url, shop) as merchant:
        response = await merchant.get("/api/admin/export", format="csv")
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert len(rows) == 4
        contents = [r["content"] for r in rows if r["role"] == "user"]
        assert '\'=HYPERLINK("http://evil")' in contents, "formulas are neutralised"
        assert 'Plain, "quoted"\nmultiline question' in contents
        assert {r["session_id"] for r in rows} == {first, second}

        lines = (await merchant.get("/api/admin/export", format="jsonl")).text.splitlines()
        conversations = [json.loads(line) for line in lines]
        assert [c["session_id"] for c in conversations] == [second, first], "newest first"
        assert [m["role"] for m in conversations[1]["messages"]] == ["user", "assistant"]
        assert conversations[1]["customer_id"] == "5"

        filtered = await merchant.get("/api/admin/export", format="jsonl", q="multiline")
        assert [json.loads(line)["session_id"] for line in filtered.text.splitlines()] == [second]
        bad = await merchant.get("/api/admin/export", format="xlsx")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_format"
        # Refused before the file starts: it broke off after its headers.
        far = await merchant.get("/api/admin/export", format="csv", to="9999-12-31")
        assert far.status_code == 400 and far.json()["error"]["code"] == "invalid_to"
        last = await merchant.get("/api/admin/export", format="csv", to="2100-12-31")
        assert len(list(csv.DictReader(io.StringIO(last.text)))) == 4
        # An empty parameter is as good as none, as for every other optional one.
        blank = await merchant.get("/api/admin/export", format="", to="", customer_id="")
        assert blank.headers["content-type"].startswith("text/csv")
        assert len(list(csv.DictReader(io.StringIO(blank.text)))) == 4


async def test_admin_api_rejects_wrong_methods_and_bodies(server: LiveServer, db: Database) -> None:
    shop = await make_shop(db)
    async with AdminClient(server.url, shop) as merchant:
        response = await merchant.http.post("/api/admin/stats", headers=merchant.headers())
        assert response.status_code == 405
        for raw in (b"{oops", b'{"faq": ' + b"[" * 5000, b'{"retention_days": Infinity}'):
            response = await merchant.http.put(
                "/api/admin/settings", content=raw, headers=merchant.headers()
            )
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "invalid_json"
