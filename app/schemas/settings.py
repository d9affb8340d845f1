"""The merchant's settings as PUT /api/admin/settings takes them (only the fields given are
changed) and as GET and PUT answer with them."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema

from app.config import DIRECT_STREAMS
from app.errors import BadRequest
from app.limits import (
    AI_PROVIDERS,
    COLOR_PATTERN,
    MAX_AI_MODEL_CHARS,
    MAX_FAQ_ANSWER_CHARS,
    MAX_FAQ_ENTRIES,
    MAX_FAQ_QUESTION_CHARS,
    MAX_GREETING_CHARS,
    MAX_RETENTION_DAYS,
    MAX_SYSTEM_PROMPT_CHARS,
    MIN_RETENTION_DAYS,
)
from app.schemas.fields import Shape, checked
from app.validation import clean_text

_COLOR = re.compile(COLOR_PATTERN)


def _text(name: str, limit: int) -> Any:
    def check(value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise BadRequest(f"invalid_{name}", f"{name} must be a string or null.")
        text = clean_text(value)
        if len(text) > limit:
            raise BadRequest(f"invalid_{name}", f"{name} is longer than {limit} characters.")
        return text or None

    return check


def _ai_model(value: object, context: dict[str, Any]) -> str | None:
    model = _text("ai_model", MAX_AI_MODEL_CHARS)(value)
    models: tuple[str, ...] = context.get("models", ())
    if model is not None and model not in models:
        # The model runs on the operator's key: only one the operator listed (AI_MODELS).
        raise BadRequest(
            "invalid_ai_model",
            f"ai_model must be null (the default) or one of {', '.join(models)}.",
        )
    return model


def _accent_color(value: object) -> str | None:
    color = _text("accent_color", 7)(value)
    if color is not None and not _COLOR.fullmatch(color):
        raise BadRequest("invalid_accent_color", "accent_color must look like #1f5f8b.")
    return color.lower() if color else None


def _ai_provider(value: object) -> str | None:
    if value not in AI_PROVIDERS:
        raise BadRequest(
            "invalid_ai_provider",
            f"ai_provider must be {' or '.join(repr(p) for p in AI_PROVIDERS)}.",
        )
    return None if value == "default" else str(value)


def _direct_streams(value: object) -> str | None:
    if value is not None and value not in DIRECT_STREAMS:
        raise BadRequest(
            "invalid_direct_streams",
            "direct_streams must be null (the operator's default), "
            f"{', '.join(DIRECT_STREAMS[:-1])} or {DIRECT_STREAMS[-1]}.",
        )
    return None if value is None else str(value)


def _retention_days(days: object) -> int | None:
    if isinstance(days, float) and days.is_integer():
        days = int(days)  # JSON has one number type: 30.0 is 30
    if days is None:
        return None
    if isinstance(days, int) and not isinstance(days, bool):
        if MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
            return days
    raise BadRequest(
        "invalid_retention_days",
        "retention_days must be null (keep) or a whole number from "
        f"{MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS}.",
    )


def _entry_text(limit: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": limit, "pattern": r"\S"}


class FaqEntry(BaseModel):
    question: Annotated[str, WithJsonSchema(_entry_text(MAX_FAQ_QUESTION_CHARS))]
    answer: Annotated[str, WithJsonSchema(_entry_text(MAX_FAQ_ANSWER_CHARS))]


def _faq(entries: object) -> list[FaqEntry]:
    """The FAQ a PUT replaces the shop's with."""
    if not isinstance(entries, list) or len(entries) > MAX_FAQ_ENTRIES:
        raise BadRequest("invalid_faq", f"faq must be a list of at most {MAX_FAQ_ENTRIES} entries.")
    faq = []
    for index, entry in enumerate(entries):
        question = entry.get("question") if isinstance(entry, dict) else None
        answer = entry.get("answer") if isinstance(entry, dict) else None
        if isinstance(question, str) and isinstance(answer, str):
            question, answer = clean_text(question), clean_text(answer)
        if not (
            isinstance(question, str)
            and isinstance(answer, str)
            and 0 < len(question) <= MAX_FAQ_QUESTION_CHARS
            and 0 < len(answer) <= MAX_FAQ_ANSWER_CHARS
        ):
            raise BadRequest(
                "invalid_faq",
                f"faq entry {index + 1} needs a question (up to {MAX_FAQ_QUESTION_CHARS} "
                f"characters) and an answer (up to {MAX_FAQ_ANSWER_CHARS}).",
            )
        faq.append(FaqEntry(question=question, answer=answer))
    return faq


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


RETENTION = {"type": "integer", "minimum": MIN_RETENTION_DAYS, "maximum": MAX_RETENTION_DAYS}


class SettingsBody(Shape):
    """A PUT's changes: only the fields it gives (model_fields_set), checked in this order."""

    greeting: Annotated[
        str | None,
        checked(_text("greeting", MAX_GREETING_CHARS)),
        WithJsonSchema(_nullable({"type": "string", "maxLength": MAX_GREETING_CHARS})),
    ] = None
    system_prompt: Annotated[
        str | None,
        checked(_text("system_prompt", MAX_SYSTEM_PROMPT_CHARS)),
        WithJsonSchema(_nullable({"type": "string", "maxLength": MAX_SYSTEM_PROMPT_CHARS})),
    ] = None
    # The enum of the models a merchant may choose is the served document's (app/openapi.py).
    ai_model: Annotated[
        str | None,
        checked(_ai_model, in_context=True),
        WithJsonSchema(_nullable({"type": "string", "maxLength": MAX_AI_MODEL_CHARS})),
    ] = Field(None, description="null for the default, or one of `ai_models` (AI_MODELS)")
    accent_color: Annotated[
        str | None,
        checked(_accent_color),
        WithJsonSchema(_nullable({"type": "string", "pattern": COLOR_PATTERN})),
    ] = None
    # Holds None for "default".
    ai_provider: Annotated[
        str | None,
        checked(_ai_provider),
        WithJsonSchema({"type": "string", "enum": list(AI_PROVIDERS)}),
    ] = None
    direct_streams: Annotated[
        str | None,
        checked(_direct_streams),
        WithJsonSchema({"enum": [*DIRECT_STREAMS, None]}),
    ] = Field(None, description="null for the operator's default (DIRECT_STREAMS)")
    retention_days: Annotated[
        int | None,
        checked(_retention_days),
        WithJsonSchema(
            _nullable(
                {"type": "integer", "minimum": MIN_RETENTION_DAYS, "maximum": MAX_RETENTION_DAYS}
            )
        ),
    ] = None
    faq: Annotated[list[FaqEntry], checked(_faq, schema_of=list[FaqEntry])] = Field(
        [], json_schema_extra={"maxItems": MAX_FAQ_ENTRIES}
    )

    def changes(self) -> dict[str, object]:
        """The shop's columns this PUT sets (its FAQ aside)."""
        return {name: getattr(self, name) for name in self.model_fields_set if name != "faq"}

    def faq_entries(self) -> list[tuple[str, str]] | None:
        """The FAQ this PUT replaces the shop's with (None: left as it is)."""
        if "faq" not in self.model_fields_set:
            return None
        return [(entry.question, entry.answer) for entry in self.faq]


class SettingsDefaults(BaseModel):
    greeting: str
    accent_color: str
    system_prompt: str
    ai_provider: str
    ai_model: str
    direct_streams: str


class Settings(BaseModel):
    greeting: str | None
    accent_color: str | None
    system_prompt: str | None
    ai_provider: str
    ai_model: str | None
    retention_days: int | None
    direct_streams: str | None
    faq: list[FaqEntry]
    defaults: SettingsDefaults = Field(description="What a field left null stands for")
    ai_models: list[str] = Field(
        description="What ai_model may be (besides null, the default): the operator's list"
    )


class SavedSettings(Settings):
    storefront_synced: bool = Field(description="Whether the storefront has them already")
