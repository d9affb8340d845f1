"""The OpenAPI description of the storefront (app proxy) and merchant APIs, at /openapi.json."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

UUID4 = {
    "type": "string",
    "format": "uuid",
    "pattern": (
        "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
    ),
}
TIME = {"type": "string", "format": "date-time"}
# `<message id>:<offset>` as the stream's events carry it (app/validation.py's last_event_param).
LAST_EVENT_ID = {"type": "string", "pattern": UUID4["pattern"][:-1] + ":[0-9]{1,18}$"}
# 408, 414 and 431 come from the server's own limits (app/server.py), before any route.
ERROR_CODES = (
    "400", "401", "403", "404", "405", "408", "409", "413", "414", "429", "431", "503"
)  # fmt: skip


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: {"$ref": "#/components/responses/Error"} for code in codes or ERROR_CODES}


def _query(
    name: str, schema: dict[str, Any], required: bool = False, description: str = ""
) -> dict[str, Any]:
    parameter = {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }
    if not required:
        parameter["allowEmptyValue"] = True  # `name=` is the same as leaving it out, as in a form
    return parameter


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": UUID4}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


SESSION_BODY = {"type": "object", "required": ["session_id"], "properties": {"session_id": UUID4}}
SSE = {
    "description": (
        "Server-sent events: start {conversation_id, user_message_id, assistant_message_id}, "
        "delta {text} (id: <assistant_message_id>:<offset>), then done {assistant_message_id, "
        "finish_reason, status} or error {code, message}"
    ),
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"type": "string", "enum": ["start", "delta", "done", "error"]},
                    "data": {"type": "string", "contentMediaType": "application/json"},
                    "id": {"type": "string"},
                },
            }
        }
    },
}

PROXY: list[dict[str, list[str]]] = [{"appProxy": []}]
ADMIN: list[dict[str, list[str]]] = [{"sessionToken": []}]
# app/validation.py's EARLIEST_DATE to LATEST_DATE: 2000-01-01 to 2100-12-31.
DATE = {
    "type": "string",
    "format": "date",
    "pattern": "^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
}
FILTERS = [
    _query("q", {"type": "string", "maxLength": 200}, description="Text in any message"),
    _query("status", {"type": "string", "enum": ["active", "ended", "abandoned"]}),
    _query("from", DATE, description="The first day, from 2000-01-01"),
    _query("to", DATE, description="The last day, up to 2100-12-31"),
    _query("customer_id", {"type": "string", "pattern": "^[0-9]{1,64}$"}),
]

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Message": {
        "type": "object",
        "required": ["id", "role", "content", "status", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "role": {"type": "string", "enum": ["user", "assistant"]},
            "content": {"type": "string"},
            "status": {"type": "string", "enum": ["complete", "streaming", "stopped", "error"]},
            "created_at": TIME,
            "client_message_id": {
                "type": ["string", "null"],
                "description": "The shopper's message's own id, as sent with it; null for replies",
            },
        },
    },
    "History": {
        "type": "object",
        "required": ["session_id", "status", "messages", "next_before"],
        "properties": {
            "session_id": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "ended", "abandoned", "unknown"]},
            "messages": {"type": "array", "items": _ref("Message")},
            "next_before": {"type": ["string", "null"]},
        },
    },
    "SessionStatus": {
        "type": "object",
        "required": ["session_id", "status"],
        "properties": {
            "session_id": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "ended", "abandoned", "unknown"]},
        },
    },
    "Stopped": {
        "type": "object",
        "required": ["assistant_message_id", "status", "content"],
        "properties": {
            "assistant_message_id": {"type": "string"},
            "status": {"type": "string"},
            "content": {"type": "string"},
        },
    },
    "Conversation": {
        "type": "object",
        "required": ["id", "status", "customer_id", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string"},
            "customer_id": {"type": ["string", "null"]},
            "created_at": TIME,
            "last_activity_at": TIME,
            "message_count": {"type": "integer"},
            "preview": {"type": ["string", "null"]},
        },
    },
    "Settings": {
        "type": "object",
        "properties": {
            "greeting": {"type": ["string", "null"], "maxLength": 200},
            "accent_color": {"type": ["string", "null"], "pattern": "^#[0-9a-fA-F]{6}$"},
            "system_prompt": {"type": ["string", "null"], "maxLength": 4000},
            "ai_provider": {"type": "string", "enum": ["default", "offline"]},
            "ai_model": {
                "type": ["string", "null"],
                "maxLength": 100,
                "description": "null for the default, or one of `ai_models` (AI_MODELS)",
            },
            "retention_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 3650},
            "faq": {
                "type": "array",
                "maxItems": 100,
                "items": {
                    "type": "object",
                    "required": ["question", "answer"],
                    "properties": {
                        "question": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 300,
                            "pattern": r"\S",
                        },
                        "answer": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 2000,
                            "pattern": r"\S",
                        },
                    },
                },
            },
        },
    },
}

PATHS: dict[str, Any] = {
    "/proxy/messages": {
        "post": {
            "summary": "Send a message; the reply streams back",
            "security": PROXY,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["session_id", "message"],
                    "properties": {
                        "session_id": UUID4,
                        "message": {"type": "string", "minLength": 1, "maxLength": 4000},
                        # null is no id, as if the field were left out
                        "client_message_id": {"oneOf": [UUID4, {"type": "null"}]},
                    },
                }
            ),
            "responses": {"200": SSE, **_errors()},
        }
    },
    "/proxy/history": {
        "get": {
            "summary": "A page of the conversation, newest page first",
            "security": PROXY,
            "parameters": [
                _query("session_id", UUID4, True),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                _query("before", UUID4),
            ],
            "responses": {"200": _json(_ref("History")), **_errors()},
        }
    },
    "/proxy/messages/{message_id}/stream": {
        "get": {
            "summary": "Resume a reply (honours Last-Event-ID)",
            "security": PROXY,
            "parameters": [
                _path("message_id"),
                _query("session_id", UUID4, True),
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": LAST_EVENT_ID,
                    "description": "The id of the last event received; another reply's id "
                    "starts from the beginning",
                },
                _query("last_event_id", LAST_EVENT_ID, description="Last-Event-ID, in the query"),
            ],
            "responses": {"200": SSE, **_errors()},
        }
    },
    "/proxy/messages/{message_id}/stop": {
        "post": {
            "summary": "Stop a reply; the partial text is kept",
            "security": PROXY,
            "parameters": [_path("message_id")],
            "requestBody": _body(SESSION_BODY),
            "responses": {"200": _json(_ref("Stopped")), **_errors()},
        }
    },
    "/proxy/sessions/end": {
        "post": {
            "summary": "End the conversation",
            "security": PROXY,
            "requestBody": _body(SESSION_BODY),
            "responses": {"200": _json(_ref("SessionStatus")), **_errors()},
        }
    },
    "/proxy/sessions/status": {
        "get": {
            "summary": "A session's status",
            "security": PROXY,
            "parameters": [_query("session_id", UUID4, True)],
            "responses": {"200": _json(_ref("SessionStatus")), **_errors()},
        }
    },
    "/api/admin/conversations": {
        "get": {
            "summary": "Conversations, newest first",
            "security": ADMIN,
            "parameters": [
                *FILTERS,
                _query(
                    "cursor",
                    {"type": "string", "maxLength": 200},
                    description="next_cursor of the page before; any other value is 400",
                ),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["conversations", "next_cursor"],
                        "properties": {
                            "conversations": {"type": "array", "items": _ref("Conversation")},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    }
                ),
                **_errors(),
            },
        }
    },
    "/api/admin/conversations/{conversation_id}": {
        "get": {
            "summary": "A page of a transcript, oldest first",
            "security": ADMIN,
            "parameters": [
                _path("conversation_id"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                _query("after", UUID4, description="The next_after of the page before"),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["conversation", "messages", "next_after"],
                        "properties": {
                            "conversation": _ref("Conversation"),
                            "messages": {"type": "array", "items": _ref("Message")},
                            "next_after": {"type": ["string", "null"]},
                        },
                    }
                ),
                **_errors(),
            },
        },
        "delete": {
            "summary": "Delete a conversation for good",
            "security": ADMIN,
            "parameters": [_path("conversation_id")],
            "responses": {"204": {"description": "Deleted"}, **_errors()},
        },
    },
    "/api/admin/stats": {
        "get": {
            "summary": "Figures for the dashboard",
            "security": ADMIN,
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": [
                            "conversations_today",
                            "conversations_this_week",
                            "conversations_total",
                            "messages_total",
                            "average_messages_per_conversation",
                            "abandonment_rate",
                            "top_questions",
                            "per_day",
                        ],
                    }
                ),
                **_errors(),
            },
        }
    },
    "/api/admin/settings": {
        "get": {
            "summary": "The shop's settings",
            "security": ADMIN,
            "responses": {"200": _json(_ref("Settings")), **_errors()},
        },
        "put": {
            "summary": "Change settings (only the fields given)",
            "security": ADMIN,
            "requestBody": _body(_ref("Settings")),
            "responses": {"200": _json(_ref("Settings")), **_errors()},
        },
    },
    "/api/admin/export": {
        "get": {
            "summary": "All or filtered conversations, streamed",
            "security": ADMIN,
            "parameters": [
                *FILTERS,
                _query("format", {"type": "string", "enum": ["csv", "jsonl"]}),
            ],
            "responses": {
                "200": {
                    "description": "A file",
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "application/x-ndjson": {"schema": {"type": "string"}},
                    },
                },
                **_errors(),
            },
        }
    },
    "/api/admin/data-requests": {
        "get": {
            "summary": "Customers' data requests",
            "security": ADMIN,
            "responses": {
                "200": _json({"type": "object", "required": ["data_requests"]}),
                **_errors(),
            },
        }
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Storefront Chat",
        "version": "1.0.0",
        "description": (
            "The storefront API behind Shopify's app proxy (/apps/chat/... reaches /proxy/...) and "
            "the merchant API of the embedded dashboard. Every error is "
            '{"error": {"code", "message"}}.'
        ),
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": {"Error": _json(_ref("Error"), "An error, in the one documented shape")},
        "securitySchemes": {
            "appProxy": {
                "type": "apiKey",
                "in": "query",
                "name": "signature",
                "description": (
                    "Shopify's app-proxy signature over the query (with shop, timestamp, "
                    "path_prefix and logged_in_customer_id)"
                ),
            },
            "sessionToken": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An App Bridge session token",
            },
        },
    },
}


def document(models: tuple[str, ...]) -> dict[str, Any]:
    """The description, with what depends on how this service is run: the models a merchant
    may choose (AI_MODEL and AI_MODELS)."""
    settings = {**SCHEMAS["Settings"]["properties"]["ai_model"], "enum": [None, *models]}
    schemas = {
        **SCHEMAS,
        "Settings": {
            **SCHEMAS["Settings"],
            "properties": {**SCHEMAS["Settings"]["properties"], "ai_model": settings},
        },
    }
    return {**DOCUMENT, "components": {**DOCUMENT["components"], "schemas": schemas}}


async def openapi(request: Request) -> Response:
    return JSONResponse(document(request.app.state.chat.settings.ai_models))
