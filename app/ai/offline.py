"""The offline assistant: answers from the shop's FAQ, never touches the network."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator, Sequence

from app.ai.base import FaqItem, Finished, ReplyRequest

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an and are as at be can could do does for from have how i if in is it me my of on or "
    "our please so that the there this to we what when where which who why will with would "
    "you your yours any about get".split()
)
_GREETINGS = frozenset({"hi", "hello", "hey", "hallo", "bonjour", "hola", "morning", "evening"})
FALLBACK = (
    "Thanks for your message! I could not find an answer to that in this store's help "
    "topics. You can reach the store directly through its contact page."
)


@functools.lru_cache(maxsize=4096)
def _terms(text: str) -> frozenset[str]:
    # Cached: a shop's FAQ texts are the same for every question (a tenth of a turn; bench/).
    terms = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        # A crude stem, enough to match "returns" with "return" and "shipping" with "ship".
        for suffix in ("ing", "es", "s"):
            if len(word) > len(suffix) + 2 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        terms.add(word)
    return frozenset(terms)


def best_answer(question: str, faq: Sequence[FaqItem]) -> FaqItem | None:
    asked = _terms(question)
    if not asked:
        return None
    best: tuple[float, FaqItem] | None = None
    for item in faq:
        topic = _terms(item.question)
        overlap = len(asked & topic) + 0.25 * len(asked & (_terms(item.answer) - topic))
        if overlap <= 0:
            continue
        score = overlap / (len(topic) ** 0.5 or 1)
        if best is None or score > best[0]:
            best = (score, item)
    return best[1] if best and best[0] >= 0.4 else None


def compose_reply(question: str, faq: Sequence[FaqItem]) -> str:
    item = best_answer(question, faq)
    if item is not None:
        return item.answer
    words = set(_WORD.findall(question.lower()))
    if words and words <= _GREETINGS | {"there", "team"}:
        reply = "Hello! How can I help you today?"
    else:
        reply = FALLBACK
    if faq:
        topics = "\n".join(f"- {entry.question}" for entry in list(faq)[:5])
        reply += f"\n\nI can help with questions like:\n\n{topics}"
    return reply


class OfflineProvider:
    name = "offline"

    def __init__(self, *, word_delay: float = 0.03) -> None:
        self.word_delay = word_delay

    async def stream(self, request: ReplyRequest) -> AsyncIterator[str | Finished]:
        question = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        reply = compose_reply(question, request.faq)
        for piece in re.findall(r"\s*\S+", reply):
            # Word by word, like a model; each word is relayed as its own event either way.
            if self.word_delay:
                await asyncio.sleep(self.word_delay)
            yield piece
        yield Finished("stop")

    async def aclose(self) -> None:
        return None
