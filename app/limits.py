"""Every length, range and pattern the API holds clients to, in one place: the validators
(app/validation.py, app/schemas/) enforce them and /openapi.json states them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# A random UUID (version 4), in either case; the API keeps and answers with lower case.
UUID4_PATTERN = (
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
)
# Whole numbers from clients: at most this many ASCII digits, so that int() never reads
# thousands of them and every value fits a 63-bit column.
MAX_DIGITS = 18
LARGEST_INT = 10**MAX_DIGITS - 1
# `<message id>:<offset>`, as a reply's events carry it (Last-Event-ID).
EVENT_ID_PATTERN = UUID4_PATTERN[:-1] + f":[0-9]{{1,{MAX_DIGITS}}}$"

MAX_MESSAGE_CHARS = 4000
# A product handle as Shopify makes them: letters of any script, digits, - _ .
HANDLE_CHARS = r"[0-9A-Za-z\-_.\u0080-\uffff]"
MAX_HANDLE_CHARS = 255
CONVERSATION_SCOPES = ("shop", "product")


@dataclass(frozen=True)
class Limit:
    """A page size: what is given without one, and the range a client may ask for."""

    default: int
    low: int
    high: int


HISTORY_LIMIT = Limit(default=50, low=1, high=100)
CONVERSATIONS_LIMIT = Limit(default=25, low=1, high=100)
TRANSCRIPT_LIMIT = Limit(default=200, low=1, high=500)

# The merchant's filters. Dates are the app's own years, so that date arithmetic on them (the
# end of the `to` day) never leaves what datetime and the databases hold.
STATUSES = ("active", "ended", "abandoned")
MAX_SEARCH_CHARS = 200
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2100, 12, 31)
DATE_PATTERN = "^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
MAX_CUSTOMER_ID_DIGITS = 64  # Shopify's numeric ids; the column holds 64
MAX_CURSOR_CHARS = 200
EXPORT_FORMATS = ("csv", "jsonl")

# The merchant's settings.
MAX_GREETING_CHARS = 200
MAX_SYSTEM_PROMPT_CHARS = 4000
MAX_AI_MODEL_CHARS = 100
COLOR_PATTERN = "^#[0-9a-fA-F]{6}$"
AI_PROVIDERS = ("default", "offline")
MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 1, 3650
MAX_FAQ_ENTRIES = 100
MAX_FAQ_QUESTION_CHARS = 300
MAX_FAQ_ANSWER_CHARS = 2000

# Live conversations (docs/live.md).
MAX_EMAIL_CHARS = 320
MAX_STAFF_NAME_CHARS = 60
