"""/openapi.json, generated from the table of operations (app/schemas/operations.py) and the
JSON Schemas of their shapes."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.schemas.fields import DATE, UUID4, Error
from app.schemas.operations import (
    ERROR_CODES,
    OPERATIONS,
    File,
    Operation,
    Stream,
    error_statuses,
)
from app.schemas.storefront import EVENTS

__all__ = ["DATE", "DOCUMENT", "ERROR_CODES", "document", "openapi"]

REF = "#/components/schemas/{model}"
SECURITY_SCHEMES = {
    "appProxy": {
        "type": "apiKey",
        "in": "query",
        "name": "signature",
        "description": (
            "Shopify's app-proxy signature over the query (with shop, timestamp, "
            "path_prefix and logged_in_customer_id)"
        ),
    },
    "chatTicket": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Chat-Ticket",
        "description": (
            "A ticket from POST /proxy/sessions/ticket: this shop, this customer and this one "
            "session, for 10 minutes"
        ),
    },
    "sessionToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An App Bridge session token",
    },
}
INFO = {
    "title": "Storefront Chat",
    "version": "1.0.0",
    "description": (
        "The storefront API behind Shopify's app proxy (/apps/chat/... reaches /proxy/...), "
        "its streaming endpoints on the app's own host (/direct/..., with a ticket) and "
        "the merchant API of the embedded dashboard. Every error is "
        '{"error": {"code", "message"}}.'
    ),
}


class _Schemas(GenerateJsonSchema):
    """Pydantic's JSON Schema without a title on every field (the names say it)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _components() -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    """The schemas of the bodies, answers and events, each under its shape's name."""
    models: list[type[BaseModel]] = [Error, *EVENTS.values()]
    for operation in OPERATIONS:
        if isinstance(operation.answer, Stream):
            models += [m for _, m in operation.answer.events if m not in models]
        for model in (operation.body, operation.answer):
            if isinstance(model, type) and model not in models:
                models.append(model)
    refs, schemas = models_json_schema(
        [(model, "validation") for model in models], ref_template=REF, schema_generator=_Schemas
    )
    return dict(refs), _used(refs.values(), schemas.get("$defs", {}))


def _used(roots: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """The schemas the roots refer to, directly or not (pydantic also gives the dataclass a
    field's validator returns, PageContext, which the document never names)."""
    used: dict[str, Any] = {}
    pending = re.findall(r'"#/components/schemas/(\w+)"', json.dumps(list(roots)))
    while pending:
        name = pending.pop()
        if name not in used:
            used[name] = schemas[name]
            pending += re.findall(r'"#/components/schemas/(\w+)"', json.dumps(schemas[name]))
    return dict(sorted(used.items()))


REFS, SCHEMAS = _components()


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return dict(REFS[(model, "validation")])


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _events(stream: Stream) -> dict[str, Any]:
    """A stream: each event by its name and the JSON its data holds."""
    events = dict(stream.events)
    listed = ", ".join(f"{name} {{{', '.join(m.model_fields)}}}" for name, m in events.items())
    data = {"type": "string", "contentMediaType": "application/json"}
    return {
        "description": f"Server-sent events: {listed}; {stream.description}",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["event", "data"],
                    "properties": {
                        "event": {"type": "string", "enum": list(events)},
                        "data": data,
                        "id": {"type": "string"},
                    },
                    "oneOf": [
                        {
                            "properties": {
                                "event": {"const": name},
                                "data": {**data, "contentSchema": _ref(model)},
                            }
                        }
                        for name, model in events.items()
                    ],
                }
            }
        },
    }


def _answer(operation: Operation) -> dict[str, Any]:
    answer, description = operation.answer, operation.answer_description
    if isinstance(answer, Stream):
        return _events(answer)
    if isinstance(answer, File):
        content = {media: {"schema": {"type": "string"}} for media in answer.media_types}
        return {"description": description, "content": content}
    if answer is None:
        return {"description": description}
    return _json(_ref(answer), description)


def _query(shape: type[BaseModel]) -> list[dict[str, Any]]:
    """A query shape's fields as parameters: an optional one given empty is as if left out."""
    schema = shape.model_json_schema(schema_generator=_Schemas)
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        field = {k: v for k, v in field.items() if k not in ("default", "title")}
        parameter = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": field,
            "description": field.pop("description", ""),
        }
        if name not in required:
            parameter["allowEmptyValue"] = True  # `name=` is as if left out, as in a form
        parameters.append(parameter)
    return parameters


def _operation(operation: Operation) -> dict[str, Any]:
    path_params = [
        {"name": name, "in": "path", "required": True, "schema": UUID4}
        for name in re.findall(r"{(\w+)}", operation.path)
    ]
    query = _query(operation.query) if operation.query else []
    described: dict[str, Any] = {"summary": operation.summary}
    if operation.description:
        described["description"] = operation.description
    described["security"] = [{operation.security: []}]
    if path_params or query or operation.headers:
        described["parameters"] = [*path_params, *query[:1], *operation.headers, *query[1:]]
    if operation.body is not None:
        content = {"application/json": {"schema": _ref(operation.body)}}
        described["requestBody"] = {"required": True, "content": content}
    error = {"$ref": "#/components/responses/Error"}
    described["responses"] = {
        operation.status: _answer(operation),
        **{code: error for code in error_statuses(operation)},
    }
    return described


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation)
    return paths


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": INFO,
    "paths": _paths(),
    "components": {
        "schemas": SCHEMAS,
        "responses": {"Error": _json(_ref(Error), "An error, in the one documented shape")},
        "securitySchemes": SECURITY_SCHEMES,
    },
}


def document(models: tuple[str, ...]) -> dict[str, Any]:
    """The description, with what depends on how this service is run: the models a merchant
    may choose (AI_MODEL and AI_MODELS)."""
    schemas = copy.deepcopy(SCHEMAS)
    schemas["SettingsBody"]["properties"]["ai_model"]["enum"] = [None, *models]
    return {**DOCUMENT, "components": {**DOCUMENT["components"], "schemas": schemas}}


async def openapi(request: Request) -> Response:
    return JSONResponse(document(request.app.state.chat.settings.ai_models))
