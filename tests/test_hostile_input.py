"""Every parameter of every endpoint, sent hostile values of each kind, is answered with a
documented 4xx (or, where the value is still a valid one, as a valid value is), never a 5xx, and
the same keep-alive connection then answers a normal request.

The endpoints come from the app's own routes: a route the walk does not know fails
test_every_route_is_walked. The parameters of the storefront and merchant APIs come from
/openapi.json, and a value that does not conform to its parameter's schema must be refused.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jsonschema_rs
import pytest
from sqlalchemy.pool import NullPool
from starlette.routing import Mount, Route

from app.db import Database
from app.main import create_app
from app.openapi import DOCUMENT, ERROR_CODES
from app.shopify import ProxyIdentity, sign_proxy_query
from app.tickets import Tickets
from tests.conftest import make_settings
from tests.factories import TEST_API_SECRET, ProxyClient, make_shop, new_id, session_token
from tests.fake_shopify import sign_oauth
from tests.servers import LiveServer, start_app_server

# ---- the hostile values -----------------------------------------------------------------

# As text: in a query, a path segment, a form field or a header.
TEXT: dict[str, list[str]] = {
    "non-ASCII digits": ["²", "١٢", "１２", "𝟗"],
    "huge numbers": ["9" * 30, "9" * 5000, "-9223372036854775809", "1e400"],
    "control characters": [
        "\x00",
        "a\r\nSet-Cookie: x=1",
        "\x1b[31m\x7f\x85",
        "\u202e\u200b\ufeff",
    ],
    "over-long strings": ["x" * 5000, "é" * 3000],
    "far-off dates": ["9999-12-31", "0001-01-01", "10000-01-01", "2026-02-30"],
    "JSON as text": ["[" * 3000, "null", '{"a": 1}'],
}
# As JSON: the value of one field of a body.
JSON: dict[str, list[str]] = {
    "non-ASCII digits": ['"²"', '"１２"'],
    "huge numbers": ["1" + "0" * 30, "1" + "0" * 5000, "1e400", "-1e400"],
    "deep JSON": ["[" * 5000 + "]" * 5000, '{"a": ' * 1000 + "1" + "}" * 1000],
    "wrong JSON types": ["12", "1.5", "true", "null", "[]", "{}", '["x"]', '{"x": "y"}', "NaN"],
    "control characters": ['"\\u0000"', '"a\\r\\nb"', '"\\ud800"', '"\\u202e"'],
    "over-long strings": ['"' + "x" * 60_000 + '"', '"' + "é" * 5000 + '"'],
    "far-off dates": ['"9999-12-31"'],
}
# As a whole body, besides every JSON value above.
BODIES: dict[str, list[bytes]] = {
    "deep JSON": [b"[" * 60_000, b'{"a":' * 12_000],
    "not UTF-8": [b"\xff\xfe{}", b'{"message": "\xc3"}'],
    "over-long strings": [b'{"x": "' + b"x" * 70_000 + b'"}'],
}

REFUSE: dict[str, Any] = {"not": {}}  # no value conforms: every hostile one must be refused
ANY: dict[str, Any] = {}  # every value conforms: any answer but a 5xx
SHOP = {"type": "string", "pattern": r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}\.myshopify\.com$"}
UUID4 = DOCUMENT["paths"]["/proxy/history"]["get"]["parameters"][0]["schema"]
ERRORS = {int(code) for code in ERROR_CODES}
HOSTILE = "\x00hostile\x00"  # where a JSON value goes into a body


# ---- what is walked ---------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    where: str  # query, path, header, body (a JSON path), form, or signature: set after signing
    name: str
    schema: dict[str, Any]  # a value that does not conform must be refused
    prefix: str = ""  # what comes before the value: a header's scheme, a cookie's name


@dataclass
class Endpoint:
    """One route, with a valid request to vary one parameter of at a time."""

    method: str
    path: str
    auth: str  # proxy (signed app proxy), admin (session token), oauth (hmac), dev, none
    params: list[Param]
    query: dict[str, str] = field(default_factory=dict)
    path_values: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    body_schema: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    documented: set[int] = field(default_factory=lambda: set(ERRORS))
    html_errors: bool = False  # a form page that shows its error on the page
    # "api": {"error": {"code", "message"}}; "shopify": {"status", "message", "description"},
    # the Ajax Cart API's own shape, which the local storefront's cart answers in.
    error_shape: str = "api"
    label: str = ""

    @property
    def route(self) -> tuple[str, str]:
        return self.method, self.path

    def __str__(self) -> str:
        return f"{self.method} {self.path}{f' ({self.label})' if self.label else ''}"


# Placeholders, filled in from the walk's own shop and conversation.
REQUIRED = {
    "session_id": "{session}",
    "message": "hello",
    "message_id": "{reply}",
    "conversation_id": "{conversation}",
    "email": "shopper@example.com",
    "display_name": "Alex",
}
# What a nested field is walked inside of.
NESTED = {"faq": [{"question": "Do you ship?", "answer": "Yes."}]}
PROXY_IDENTITY = [
    Param("query", "shop", SHOP),
    Param("query", "timestamp", REFUSE),
    Param("query", "logged_in_customer_id", {"type": "string", "pattern": "^[0-9]{0,64}$"}),
    Param("query", "path_prefix", ANY),
    Param("signature", "signature", REFUSE),
]


# Every proxy endpoint verifies these with the same code before anything of its own: they are
# walked on one endpoint of each way to it (a turn verifies inside its transaction).
IDENTITY_WALKED_ON = {("get", "/proxy/sessions/status"), ("post", "/proxy/messages")}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _body_params(schema: dict[str, Any]) -> list[Param]:
    params = [Param("body", "", schema)]
    for name, field_schema in _resolve(schema).get("properties", {}).items():
        params.append(Param("body", name, schema))
        items = _resolve(field_schema).get("items", {})
        for inner in _resolve(items).get("properties", {}):
            params.append(Param("body", f"{name}.0.{inner}", schema))
    return params


def _with_empty(schema: dict[str, Any], allowed: bool) -> dict[str, Any]:
    return {"anyOf": [schema, {"const": ""}]} if allowed else schema


def _api_endpoint(path: str, method: str, operation: dict[str, Any]) -> Endpoint:
    proxy = operation["security"] == [{"appProxy": []}]
    ticket = operation["security"] == [{"chatTicket": []}]
    params = [
        Param(p["in"], p["name"], _with_empty(p["schema"], p.get("allowEmptyValue", False)))
        for p in operation.get("parameters", [])
    ]
    endpoint = Endpoint(
        method.upper(),
        path,
        "proxy" if proxy else "ticket" if ticket else "admin",
        params,
        query={
            p["name"]: REQUIRED[p["name"]]
            for p in operation.get("parameters", [])
            if p["required"] and p["in"] == "query"
        },
        path_values={p.name: REQUIRED[p.name] for p in params if p.where == "path"},
        documented={int(code) for code in operation["responses"] if code.isdigit()},
    )
    if "requestBody" in operation:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        required = _resolve(schema).get("required", [])
        endpoint.body = {name: REQUIRED[name] for name in required}
        if path in (
            "/proxy/messages",
            "/proxy/sessions/end",
            "/proxy/sessions/handover",
            "/proxy/sessions/contact",
            "/direct/messages",
        ):
            endpoint.body["session_id"] = "{fresh}"  # each turn, each ending a session of its own
        endpoint.body_schema = schema
        endpoint.params += _body_params(schema)
    if proxy and (method, path) in IDENTITY_WALKED_ON:
        endpoint.params += PROXY_IDENTITY
    elif ticket:
        endpoint.params.append(Param("header", "X-Chat-Ticket", REFUSE))
    elif not proxy:
        endpoint.params.append(Param("header", "Authorization", REFUSE, "Bearer "))
    if (method, path) == ("post", "/proxy/messages"):
        endpoint.params.append(Param("header", "X-Forwarded-For", REFUSE))
    if (method, path) == ("post", "/direct/messages"):
        # Reached without Shopify's proxy: at PROXY_HOPS=1 the shopper is the connection's
        # own address, and no X-Forwarded-For entry is read (any value is one to accept).
        endpoint.params.append(Param("header", "X-Forwarded-For", ANY))
    return endpoint


def _ticket(world: World, query: dict[str, Any], content: bytes | None) -> str:
    """A ticket for the session the request names (the walk's own when it names none)."""
    session: Any = query.get("session_id")
    try:
        session = json.loads(content or b"{}").get("session_id", session)
    except (ValueError, AttributeError, RecursionError):
        pass
    if not isinstance(session, str) or not re.fullmatch(UUID4["pattern"], session):
        session = world.session
    return Tickets(TEST_API_SECRET).issue(ProxyIdentity(world.shop, None), session).ticket


OAUTH = [
    Param("query", "shop", SHOP),
    Param("query", "timestamp", REFUSE),
    Param("signature", "hmac", REFUSE),
]
SIGNED_IN = Param("header", "Cookie", REFUSE, "scw_dev_merchant=")  # a dev login that is not one
REQUEST_ID = Param("header", "X-Request-Id", ANY)

# What /cart/add.js takes (app/dev/cart_routes.py): variants by id, each quantity within bounds.
CART_ID = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        {"type": "string", "pattern": "^[0-9]{1,18}$"},
    ]
}
CART_ADD = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": 100,
            "items": {
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": CART_ID,
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 10_000},
                },
            },
        },
        "sections": {},
        "sections_url": {},
    },
}
MERINO_M = 49_100_000_000_105  # the demo catalog's Merino Crew Sweater, M / Navy, in stock

PAGES = [
    Endpoint("GET", "/healthz", "none", [REQUEST_ID]),
    Endpoint("GET", "/readyz", "none", [REQUEST_ID]),
    Endpoint("GET", "/openapi.json", "none", [REQUEST_ID]),
    Endpoint(
        "GET",
        "/",
        "oauth",
        [*OAUTH, Param("query", "host", ANY)],
        query={"shop": "{shop}"},
        label="opened by Shopify",
    ),
    Endpoint("GET", "/", "none", [Param("query", "id_token", REFUSE)], label="inside the admin"),
    Endpoint("GET", "/auth", "oauth", OAUTH, query={"shop": "{shop}"}),
    Endpoint(
        "GET",
        "/auth/callback",
        "oauth",
        [*OAUTH, Param("query", "code", ANY), Param("query", "state", REFUSE)],
        query={"shop": "{shop}", "code": "a-code", "state": "{nonce}"},
        headers={"Cookie": "{state_cookie}"},
    ),
    Endpoint(
        "GET",
        "/auth/session-token",
        "none",
        [Param("query", "shop", SHOP), Param("query", "shopify-reload", REFUSE)],
        query={"shop": "{shop}", "shopify-reload": "/"},
    ),
    Endpoint(
        "GET",
        "/conversations/{conversation_id}",
        "dev",
        [Param("path", "conversation_id", UUID4), SIGNED_IN],
        path_values={"conversation_id": "{conversation}"},
    ),
    Endpoint("GET", "/stats", "dev", [SIGNED_IN]),
    Endpoint("GET", "/settings", "dev", [SIGNED_IN]),
    Endpoint("GET", "/inbox", "dev", [SIGNED_IN]),
    Endpoint("GET", "/dev/login", "none", [REQUEST_ID]),
    Endpoint(
        "POST",
        "/dev/login",
        "none",
        [Param("form", "shop", REFUSE), Param("form", "", ANY)],
        form={"shop": "{shop}"},
        html_errors=True,
    ),
    Endpoint("GET", "/dev/session-token", "dev", [SIGNED_IN]),
    Endpoint(
        "GET",
        "/static/{path}",
        "none",
        [Param("path", "path", REFUSE)],
        path_values={"path": "dashboard.css"},
    ),
    Endpoint("GET", "/storefront", "none", [Param("query", "locale", ANY)]),
    Endpoint("GET", "/storefront/collections/all", "none", [Param("query", "locale", ANY)]),
    Endpoint(
        "GET",
        "/storefront/products/{handle}",
        "none",
        [Param("path", "handle", ANY), Param("query", "locale", ANY)],
        path_values={"handle": "merino-crew-sweater"},
        html_errors=True,
    ),
    Endpoint(
        "GET",
        "/storefront/policies/{slug}",
        "none",
        [Param("path", "slug", ANY)],
        path_values={"slug": "refund-policy"},
        html_errors=True,
    ),
    Endpoint("GET", "/storefront/cart", "none", [Param("header", "Cookie", ANY, "cart=")]),
    Endpoint(
        "GET",
        "/storefront/images/{handle}.svg",
        "none",
        [Param("path", "handle", ANY)],
        path_values={"handle": "merino-crew-sweater"},
    ),
    Endpoint(
        "POST",
        "/cart/add.js",
        "none",
        [*_body_params(CART_ADD), Param("header", "Cookie", ANY, "cart=")],
        body={"items": [{"id": MERINO_M, "quantity": 1}], "sections": "cart-icon-bubble"},
        body_schema=CART_ADD,
        headers={"Content-Type": "application/json"},
        documented={400, 408, 413, 422},
        error_shape="shopify",
    ),
    Endpoint(
        "GET",
        "/cart.js",
        "none",
        [Param("header", "Cookie", ANY, "cart=")],
        error_shape="shopify",
    ),
    Endpoint(
        "POST",
        "/storefront/customer",
        "none",
        [Param("form", "customer_id", ANY), Param("form", "", ANY)],
        form={"customer_id": "1"},
    ),
    Endpoint(
        "GET",
        "/storefront/assets/{path}",
        "none",
        [Param("path", "path", REFUSE)],
        path_values={"path": "chat-widget.js"},
    ),
    Endpoint(
        "*",
        "/apps/chat/{rest}",
        "none",
        [
            Param("path", "rest", REFUSE),
            Param("query", "limit", {"type": "integer", "minimum": 1, "maximum": 100}),
            Param("header", "Cookie", ANY, "scw_dev_customer="),  # the storefront's customer
        ],
        query={"session_id": "{session}"},
        path_values={"rest": "history"},
    ),
]
API = [
    _api_endpoint(path, method, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
]
# A webhook, signed as Shopify signs it (over the body, hostile values and all), so that what
# the walk reaches is what comes after the signature check.
WEBHOOK_TEXT = {"type": "string", "pattern": r"^[\x21-\x7e]{1,100}$"}
WEBHOOKS = Endpoint(
    "POST",
    "/webhooks",
    "webhook",
    [
        Param("body", "", REFUSE),
        Param("body", "shop_domain", SHOP),
        Param("body", "customer", ANY),
        Param("body", "customer.id", ANY),
        Param("body", "customer.email", ANY),
        Param("body", "data_request", ANY),
        Param("header", "X-Shopify-Topic", ANY),
        Param("header", "X-Shopify-Webhook-Id", WEBHOOK_TEXT),
        Param("header", "X-Shopify-Shop-Domain", ANY),
        Param("header", "X-Shopify-Hmac-Sha256", REFUSE),
    ],
    body={"shop_domain": "{shop}", "customer": {"id": 4242}, "data_request": {"id": 7}},
    # What a customers/* body must be (app/privacy.py): its shop, and a customer with an id
    # of digits or an email that a database can store.
    body_schema={
        "type": "object",
        "required": ["shop_domain", "customer"],
        "properties": {
            "shop_domain": SHOP,
            "customer": {
                "type": "object",
                "anyOf": [
                    {
                        "required": ["id"],
                        "properties": {
                            "id": {
                                "anyOf": [
                                    {"type": "integer", "minimum": 0, "maximum": 10**60},
                                    {"type": "string", "pattern": "^[0-9]{1,64}$"},
                                ]
                            }
                        },
                    },
                    {
                        "required": ["email"],
                        "properties": {
                            "email": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": 320,
                                "pattern": "^[^\\x00-\\x1f\\x7f\\u2028\\u2029]+$",
                            }
                        },
                    },
                ],
            },
        },
    },
    headers={"X-Shopify-Topic": "customers/data_request"},
)
ENDPOINTS = [*API, *PAGES, WEBHOOKS]
# Routes the walk leaves out, each with why.
NOT_WALKED: dict[tuple[str, str], str] = {
    ("GET", "/dev/admin/{path}"): (
        "development only, never served in production: the demo shop's stand-in for Shopify's "
        "Admin API, which the app's own catalog import calls in-process; it answers only the "
        "demo shop's token (tests/test_dev_storefront.py)"
    ),
}


def _served_routes() -> set[tuple[str, str]]:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))
    served = set()
    for route in app.routes:
        if isinstance(route, Mount):
            served.add(("GET", f"{route.path}/{{path}}"))
        elif isinstance(route, Route):
            path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
            for method in (route.methods or {"*"}) - {"HEAD"}:
                served.add((method, path))
    return served


def test_every_route_is_walked() -> None:
    walked = {endpoint.route for endpoint in ENDPOINTS}
    assert _served_routes() - walked - set(NOT_WALKED) == set(), "routes the walk does not know"
    assert walked - _served_routes() == set(), "the walk knows routes the app does not serve"


# ---- the walk's own shop and conversation -----------------------------------------------


@dataclass(frozen=True)
class World:
    shop: str
    session: str
    reply: str
    conversation: str
    dev_cookie: str
    state_cookie: str
    nonce: str

    def fill(self, text: str) -> str:
        for name in ("shop", "session", "reply", "conversation", "dev_cookie", "nonce"):
            text = text.replace("{" + name + "}", getattr(self, name))
        text = text.replace("{state_cookie}", self.state_cookie)
        return text.replace("{fresh}", new_id()) if "{fresh}" in text else text


@pytest.fixture(scope="module")
def walk_server(database_url: str) -> Iterator[LiveServer]:
    # The offline assistant answers at once: a walk sends hundreds of valid messages.
    live = start_app_server(make_settings(database_url, offline_word_delay=0))
    yield live
    live.stop()


async def _world(base_url: str, database_url: str) -> World:
    db = Database(database_url, poolclass=NullPool)
    try:
        shop = await make_shop(db, faq=[("Do you ship?", "Yes.")])
    finally:
        await db.dispose()
    async with ProxyClient(base_url, shop) as storefront:
        session = new_id()
        turn = await storefront.send(session, "Do you ship?")
        assert turn.status_code == 200
    async with httpx.AsyncClient(base_url=base_url) as browser:
        login = await browser.post("/dev/login", data={"shop": shop})
        assert login.status_code == 303
        started = await browser.get("/auth?" + _oauth_query({"shop": shop}))
        assert started.status_code == 302
    admin = {"Authorization": f"Bearer {session_token(shop)}"}
    async with httpx.AsyncClient(base_url=base_url, headers=admin) as merchant:
        listed = (await merchant.get("/api/admin/conversations")).json()
    return World(
        shop=shop,
        session=session,
        reply=turn.first("start").data["assistant_message_id"],
        conversation=listed["conversations"][0]["id"],
        dev_cookie=f"scw_dev_merchant={login.cookies['scw_dev_merchant']}",
        state_cookie=f"scw_oauth_state={started.cookies['scw_oauth_state']}",
        nonce=httpx.URL(started.headers["location"]).params["state"],
    )


@pytest.fixture(scope="module")
def world(walk_server: LiveServer, database_url: str) -> World:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _world(walk_server.url, database_url)).result()


# ---- building one request ---------------------------------------------------------------


def _oauth_query(params: dict[str, str]) -> str:
    signed = {"timestamp": str(int(time.time())), **params}
    return urlencode({**signed, "hmac": sign_oauth(signed)})


def _proxy_query(params: dict[str, str]) -> dict[str, str]:
    signed = {
        "shop": params.pop("shop"),
        "path_prefix": "/apps/chat",
        "timestamp": str(int(time.time())),
        "logged_in_customer_id": "",
        **params,
    }
    return {**signed, "signature": sign_proxy_query(signed, TEST_API_SECRET)}


_NOT_IN_A_HEADER = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def _header_bytes(value: str) -> bytes | None:
    if _NOT_IN_A_HEADER.search(value):
        # HTTP has no way to carry these in a header: uvicorn refuses the request (400, closed)
        # before the app sees it. What it does carry (tab, bytes 0x80-0xff) is sent.
        return None
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


def _set(body: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    key: Any = int(path[0]) if isinstance(body, list) else path[0]
    if isinstance(body, dict) and key not in body:
        body[key] = copy.deepcopy(NESTED.get(key))
    body[key] = _set(body[key], path[1:], value)
    return body


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, Any]
    content: bytes | None


def _content(endpoint: Endpoint, world: World, param: Param | None, value: Any) -> bytes | None:
    walked = param is not None and param.where in ("body", "form")
    if walked and param is not None and not param.name:  # the whole body
        return value if isinstance(value, bytes) else value.encode()
    if endpoint.form is not None:
        form = {k: world.fill(v) for k, v in endpoint.form.items()}
        if walked and param is not None:
            form[param.name] = value
        return urlencode(form).encode()
    if endpoint.body is None:
        return None
    body = {k: world.fill(v) if isinstance(v, str) else v for k, v in endpoint.body.items()}
    if not walked or param is None:
        return json.dumps(body).encode()
    text = json.dumps(_set(body, param.name.split("."), HOSTILE))
    return text.replace(json.dumps(HOSTILE), value).encode()


def build(
    endpoint: Endpoint, world: World, param: Param | None = None, value: Any = None
) -> Sent | None:
    """The endpoint's valid request, with `value` as `param`; None if HTTP cannot carry it."""
    query = {k: world.fill(v) for k, v in endpoint.query.items()}
    path_values = {k: world.fill(v) for k, v in endpoint.path_values.items()}
    headers: dict[str, Any] = {k: world.fill(v) for k, v in endpoint.headers.items()}
    if endpoint.auth == "proxy":
        query["shop"] = world.shop
    elif endpoint.auth == "admin":
        headers["Authorization"] = f"Bearer {session_token(world.shop)}"
    elif endpoint.auth == "dev":
        headers["Cookie"] = world.dev_cookie
    if endpoint.form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if param is not None and param.where == "query":
        query[param.name] = value
    elif param is not None and param.where == "path":
        path_values[param.name] = value
    elif param is not None and param.where == "header":
        raw = _header_bytes(param.prefix + value)
        if raw is None:
            return None
        headers[param.name] = raw
    # Signed as Shopify signs what it forwards, hostile values and all.
    if endpoint.auth == "proxy":
        encoded = urlencode(_proxy_query(query))
    elif endpoint.auth == "oauth":
        encoded = _oauth_query(query)
    else:
        encoded = urlencode(query)
    if param is not None and param.where == "signature":
        encoded = re.sub(rf"(^|&){param.name}=[^&]*", "", encoded)
        encoded += "&" + urlencode({param.name: value})
    path = endpoint.path
    for name, raw_value in path_values.items():
        path = path.replace("{" + name + "}", quote(raw_value, safe=""))
    content = _content(endpoint, world, param, value)
    if endpoint.auth == "ticket" and "X-Chat-Ticket" not in headers:
        headers["X-Chat-Ticket"] = _ticket(world, query, content)
    if endpoint.auth == "webhook":
        headers.setdefault("X-Shopify-Webhook-Id", new_id())  # each delivery its own
        digest = hmac.new(TEST_API_SECRET.encode(), content or b"", hashlib.sha256).digest()
        headers.setdefault("X-Shopify-Hmac-Sha256", base64.b64encode(digest).decode())
    return Sent(
        "GET" if endpoint.method == "*" else endpoint.method,
        f"{path}?{encoded}" if encoded else path,
        headers,
        content,
    )


# ---- what is expected -------------------------------------------------------------------


def _validator(schema: dict[str, Any]) -> Any:
    return jsonschema_rs.validator_for(
        {**schema, "components": DOCUMENT["components"]}, validate_formats=True
    )


def _refuse_constant(name: str) -> None:
    raise ValueError(name)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(value: Any) -> Any:
    """A lone surrogate is valid JSON; the validator cannot take one, the app replaces it."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {key: _storable(item) for key, item in value.items()}
    return value


def _resolve_any(schema: dict[str, Any]) -> dict[str, Any]:
    return schema["anyOf"][0] if "anyOf" in schema else schema


def conforms(endpoint: Endpoint, param: Param, value: Any, sent: Sent) -> bool:
    """Whether `value` is one the parameter's schema allows: if not, it must be refused."""
    try:
        if param.where == "body":
            assert endpoint.body_schema is not None and sent.content is not None
            body = _storable(json.loads(sent.content, parse_constant=_refuse_constant))
            return bool(_validator(endpoint.body_schema).is_valid(body))
        if param.where == "form" and not param.name:
            return True
        instance: Any = value
        if _resolve_any(param.schema).get("type") == "integer" and value != "":
            if not re.fullmatch(r"-?[0-9]{1,4000}", value):
                return False
            instance = int(value)
        return bool(_validator(param.schema).is_valid(instance))
    except (ValueError, RecursionError, UnicodeDecodeError, OverflowError):
        return False


def values(param: Param) -> Iterator[tuple[str, Any]]:
    if param.where == "body":
        for kind, texts in JSON.items():
            for text in texts:
                yield kind, text
        if param.name == "":
            for kind, raws in BODIES.items():
                for raw in raws:
                    yield kind, raw
        return
    for kind, texts in TEXT.items():
        for text in texts:
            yield kind, text


def _problem(endpoint: Endpoint, response: httpx.Response, accepted: bool) -> str | None:
    status = response.status_code
    if status >= 500:
        return f"{status}: {response.text[:200]}"
    if status < 300:
        return None if accepted else f"{status}: a value its schema refuses was accepted"
    if status < 400:
        # A page sends a merchant to log in or to renew a session token; the API never redirects.
        return f"{status}: the API redirected" if endpoint.auth in ("proxy", "admin") else None
    if status not in endpoint.documented:
        return f"{status} is not a documented status: {response.text[:200]}"
    if endpoint.html_errors and response.headers.get("content-type", "").startswith("text/html"):
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{status} is not JSON: {response.text[:200]}"
    if endpoint.error_shape == "shopify":
        if not isinstance(body, dict) or set(body) != {"status", "message", "description"}:
            return f"{status} is not Shopify's cart error shape: {response.text[:200]}"
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if (
        set(body) != {"error"}
        or not isinstance(error, dict)
        or not all(isinstance(error.get(key), str) and error[key] for key in ("code", "message"))
    ):
        return f"{status} is not the documented error shape: {response.text[:200]}"
    return None


def _peer(response: httpx.Response) -> Any:
    return response.extensions["network_stream"].get_extra_info("client_addr")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
async def test_hostile_values_get_a_documented_4xx_and_the_connection_goes_on(
    endpoint: Endpoint, walk_server: LiveServer, world: World
) -> None:
    problems: list[str] = []
    status = next(e for e in API if e.route == ("GET", "/proxy/sessions/status"))
    async with httpx.AsyncClient(
        base_url=walk_server.url,
        timeout=30,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    ) as http:
        first = await http.get("/healthz")
        connection = _peer(first)
        for param in endpoint.params:
            for kind, value in values(param):
                sent = build(endpoint, world, param, value)
                if sent is None:
                    continue
                where = f"{param.where} {param.name or '(all)'} = {kind} {str(value)[:40]!r}"
                try:
                    response = await http.request(
                        sent.method, sent.url, headers=sent.headers, content=sent.content
                    )
                except httpx.HTTPError as exc:
                    problems.append(f"{where}: the connection broke ({exc!r})")
                    continue
                finally:
                    http.cookies.clear()
                accepted = conforms(endpoint, param, value, sent)
                problem = _problem(endpoint, response, accepted)
                if problem:
                    problems.append(f"{where}: {problem}")
                # A normal request next, signed afresh: after a 500 the server had closed the
                # connection, and the next request on it was sometimes reset.
                follow_up = build(status, world)
                assert follow_up is not None
                try:
                    after = await http.get(follow_up.url, headers=follow_up.headers)
                except httpx.HTTPError as exc:
                    problems.append(f"{where}: the next request failed ({exc!r})")
                    continue
                # The server's own limits on the request line and headers (app/server.py) end
                # the connection they refuse, as they must: it may hold a request not yet read.
                closes = response.status_code in (414, 431)
                if after.status_code != 200 or (_peer(after) != connection and not closes):
                    problems.append(f"{where}: the next request was not served on the connection")
                connection = _peer(after)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])
