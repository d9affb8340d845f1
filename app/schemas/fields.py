"""The pieces the shapes are made of: field types that check a value with the API's own
validators (app/validation.py) and state it in JSON Schema, and the readers that turn a
refused shape into the API's error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError
from starlette.requests import Request

from app.errors import ApiError
from app.limits import DATE_PATTERN, EVENT_ID_PATTERN, UUID4_PATTERN, Limit
from app.validation import int_value, once, uuid4_field

S = TypeVar("S", bound="Shape")

UUID4: dict[str, Any] = {"type": "string", "format": "uuid", "pattern": UUID4_PATTERN}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
DATE: dict[str, Any] = {"type": "string", "format": "date", "pattern": DATE_PATTERN}
EVENT_ID: dict[str, Any] = {"type": "string", "pattern": EVENT_ID_PATTERN}


class Shape(BaseModel):
    """A shape a client sends: fields it does not know are left alone, as they always were."""

    model_config = ConfigDict(extra="ignore")


def required(*names: str) -> ConfigDict:
    """The config of a shape whose fields `names` a client must send. They have defaults in
    Python, so that their own validator says what is missing, in the API's words."""

    def mark(schema: dict[str, Any]) -> None:
        schema["required"] = list(names)
        for name in names:
            schema["properties"][name].pop("default", None)  # it only stands for "missing"

    return ConfigDict(extra="ignore", json_schema_extra=mark)


def checked(
    check: Callable[..., Any], *, in_context: bool = False, schema_of: Any = Any
) -> PlainValidator:
    """A field's validator: one of the API's own checks, whose value the field holds (called
    with the context read was given too, `in_context`). Its ApiError travels through pydantic
    as an error of its own code, message and status (see refusal). The field's JSON Schema is
    that of `schema_of`, or declared next to it (WithJsonSchema)."""

    def run(value: Any, info: ValidationInfo) -> Any:
        try:
            return check(value, info.context or {}) if in_context else check(value)
        except ApiError as exc:
            raise PydanticCustomError(exc.code, exc.message, {"status": exc.status_code}) from None

    return PlainValidator(run, json_schema_input_type=schema_of)


def refusal(error: ValidationError) -> ApiError:
    """The API's error for a refused shape: the first field's, in the order they are declared
    (the order they were checked in before there were shapes)."""
    first = error.errors(include_url=False)[0]
    context = first.get("ctx") or {}
    if isinstance(context.get("status"), int):
        return ApiError(first["type"], first["msg"], status_code=context["status"])
    # Only a check of pydantic's own: name the field as the API's checks do.
    where = [str(part) for part in first["loc"]] or ["body"]
    return ApiError(f"invalid_{where[0]}", f"{'.'.join(where)}: {first['msg']}")


def read(shape: type[S], data: Mapping[str, Any], **context: Any) -> S:
    try:
        return shape.model_validate(data, context=context or None)
    except ValidationError as exc:
        raise refusal(exc) from None


def read_query(request: Request, shape: type[S], **also: Any) -> S:
    """A query's parameters as `shape` declares them: each parameter's last value (a repeated
    one as the list of them, for the fields that refuse that)."""
    data: dict[str, Any] = dict(also)
    params = request.query_params
    for name, field in shape.model_fields.items():
        key = field.alias or name
        values = params.getlist(key)
        if key in data or not values:
            continue
        data[key] = values if len(values) > 1 and ONCE in field.metadata else values[-1]
    return read(shape, data)


# Marks a query field whose parameter may be given once: read_query passes a repeated one as
# a list, which its check refuses (validation.once).
ONCE = object()


def uuid4(name: str, *, required: bool = False) -> PlainValidator:
    return checked(lambda value: uuid4_field(value, name, required=required))


SessionId = Annotated[str, uuid4("session_id", required=True), WithJsonSchema(UUID4)]
# session_id in a query: given once.
QuerySessionId = Annotated[
    str,
    checked(lambda value: uuid4_field(once(value, "session_id"), "session_id")),
    WithJsonSchema(UUID4),
    ONCE,
]


def given(**extra: Any) -> Any:
    """A field a shape checks even when it is left out (its check says what a missing one
    is), with what the document says of it besides its type."""
    return Field(None, validate_default=True, **extra)


def page_size(limit: Limit) -> PlainValidator:
    return checked(lambda value: int_value(value, "limit", limit))


def page_size_schema(limit: Limit) -> WithJsonSchema:
    return WithJsonSchema({"type": "integer", "minimum": limit.low, "maximum": limit.high})


class ErrorDetail(BaseModel):
    code: str
    message: str


class Error(BaseModel):
    """Every error of the API (app/errors.py)"""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail
