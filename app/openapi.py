"""The OpenAPI description of the storefront (app proxy) and merchant APIs, at /openapi.json."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.openapi_schemas import (
    ADMIN,
    DATE,
    ERROR_CODES,
    FILTERS,
    LAST_EVENT_ID,
    PROXY,
    SCHEMAS,
    SESSION_BODY,
    SSE,
    UUID4,
    body,
    errors,
    json_content,
    path_param,
    query,
    ref,
)

__all__ = ["DATE", "DOCUMENT", "ERROR_CODES", "document", "openapi"]

PATHS: dict[str, Any] = {
    "/proxy/messages": {
        "post": {
            "summary": "Send a message; the reply streams back",
            "security": PROXY,
            "requestBody": body(
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
            "responses": {"200": SSE, **errors()},
        }
    },
    "/proxy/history": {
        "get": {
            "summary": "A page of the conversation, newest page first",
            "security": PROXY,
            "parameters": [
                query("session_id", UUID4, True),
                query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                query("before", UUID4),
            ],
            "responses": {"200": json_content(ref("History")), **errors()},
        }
    },
    "/proxy/messages/{message_id}/stream": {
        "get": {
            "summary": "Resume a reply (honours Last-Event-ID)",
            "security": PROXY,
            "parameters": [
                path_param("message_id"),
                query("session_id", UUID4, True),
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": LAST_EVENT_ID,
                    "description": "The id of the last event received; another reply's id "
                    "starts from the beginning",
                },
                query("last_event_id", LAST_EVENT_ID, description="Last-Event-ID, in the query"),
            ],
            "responses": {"200": SSE, **errors()},
        }
    },
    "/proxy/messages/{message_id}/stop": {
        "post": {
            "summary": "Stop a reply; the partial text is kept",
            "security": PROXY,
            "parameters": [path_param("message_id")],
            "requestBody": body(SESSION_BODY),
            "responses": {"200": json_content(ref("Stopped")), **errors()},
        }
    },
    "/proxy/sessions/end": {
        "post": {
            "summary": "End the conversation",
            "security": PROXY,
            "requestBody": body(SESSION_BODY),
            "responses": {"200": json_content(ref("SessionStatus")), **errors()},
        }
    },
    "/proxy/sessions/status": {
        "get": {
            "summary": "A session's status",
            "security": PROXY,
            "parameters": [query("session_id", UUID4, True)],
            "responses": {"200": json_content(ref("SessionStatus")), **errors()},
        }
    },
    "/api/admin/conversations": {
        "get": {
            "summary": "Conversations, newest first",
            "security": ADMIN,
            "parameters": [
                *FILTERS,
                query(
                    "cursor",
                    {"type": "string", "maxLength": 200},
                    description="next_cursor of the page before; any other value is 400",
                ),
                query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
            ],
            "responses": {
                "200": json_content(
                    {
                        "type": "object",
                        "required": ["conversations", "next_cursor"],
                        "properties": {
                            "conversations": {"type": "array", "items": ref("Conversation")},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    }
                ),
                **errors(),
            },
        }
    },
    "/api/admin/conversations/{conversation_id}": {
        "get": {
            "summary": "A page of a transcript, oldest first",
            "security": ADMIN,
            "parameters": [
                path_param("conversation_id"),
                query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                query("after", UUID4, description="The next_after of the page before"),
            ],
            "responses": {
                "200": json_content(
                    {
                        "type": "object",
                        "required": ["conversation", "messages", "next_after"],
                        "properties": {
                            "conversation": ref("Conversation"),
                            "messages": {"type": "array", "items": ref("Message")},
                            "next_after": {"type": ["string", "null"]},
                        },
                    }
                ),
                **errors(),
            },
        },
        "delete": {
            "summary": "Delete a conversation for good",
            "security": ADMIN,
            "parameters": [path_param("conversation_id")],
            "responses": {"204": {"description": "Deleted"}, **errors()},
        },
    },
    "/api/admin/stats": {
        "get": {
            "summary": "Figures for the dashboard",
            "security": ADMIN,
            "responses": {
                "200": json_content(
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
                **errors(),
            },
        }
    },
    "/api/admin/settings": {
        "get": {
            "summary": "The shop's settings",
            "security": ADMIN,
            "responses": {"200": json_content(ref("Settings")), **errors()},
        },
        "put": {
            "summary": "Change settings (only the fields given)",
            "security": ADMIN,
            "requestBody": body(ref("Settings")),
            "responses": {"200": json_content(ref("Settings")), **errors()},
        },
    },
    "/api/admin/export": {
        "get": {
            "summary": "All or filtered conversations, streamed",
            "security": ADMIN,
            "parameters": [
                *FILTERS,
                query("format", {"type": "string", "enum": ["csv", "jsonl"]}),
            ],
            "responses": {
                "200": {
                    "description": "A file",
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "application/x-ndjson": {"schema": {"type": "string"}},
                    },
                },
                **errors(),
            },
        }
    },
    "/api/admin/data-requests": {
        "get": {
            "summary": "Customers' data requests",
            "security": ADMIN,
            "responses": {
                "200": json_content({"type": "object", "required": ["data_requests"]}),
                **errors(),
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
        "responses": {"Error": json_content(ref("Error"), "An error, in the one documented shape")},
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
