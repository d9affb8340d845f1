"""The pieces /openapi.json is written with: shared schemas, the API's component schemas,
and helpers for parameters, bodies and responses (app/openapi.py puts them together)."""

from __future__ import annotations

from typing import Any

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


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*codes: str) -> dict[str, Any]:
    return {code: {"$ref": "#/components/responses/Error"} for code in codes or ERROR_CODES}


def query(
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


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": UUID4}


def body(schema: dict[str, Any]) -> dict[str, Any]:
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
    query("q", {"type": "string", "maxLength": 200}, description="Text in any message"),
    query("status", {"type": "string", "enum": ["active", "ended", "abandoned"]}),
    query("from", DATE, description="The first day, from 2000-01-01"),
    query("to", DATE, description="The last day, up to 2100-12-31"),
    query("customer_id", {"type": "string", "pattern": "^[0-9]{1,64}$"}),
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
            "messages": {"type": "array", "items": ref("Message")},
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
