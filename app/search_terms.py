"""A shopper's search text as the words the search indexes look for, and how close a misspelt
word is to a word of the catalog.

The words are cut out here, in Python, and only ever reach a database as bound values inside
quoted terms: no character a shopper types is read as FTS5 or tsquery syntax.
"""

from __future__ import annotations

import re

MAX_QUERY_CHARS = 200
MAX_WORDS = 8
MAX_WORD_CHARS = 40
# A misspelling is looked for only in words this long: shorter ones are too close to too much.
FUZZY_MIN_CHARS = 5

# Unicode letters and digits; everything else (quotes, *, -, :, &|!(), emoji, NUL) separates.
_WORD = re.compile(r"[^\W_]+")

# Words that say nothing about a product in a shopper's question. PostgreSQL's language
# configurations drop their own; these also serve the `simple` one and SQLite, which has none.
STOPWORDS = frozenset(
    """a an and any are at be can do does for from have how i in is it me my of on or our
    please show some that the this to want we what which with you your
    de des du et la le les un une pour en avec au aux est
    der die das und ein eine mit für ist im
    el los las y una con por para es""".split()
)


def words(query: str) -> list[str]:
    """The searchable words of a query, lower-cased, in order, without repeats or stopwords
    (unless nothing else is left)."""
    found: list[str] = []
    for word in _WORD.findall(query[:MAX_QUERY_CHARS].lower()):
        word = word[:MAX_WORD_CHARS]
        if word not in found:
            found.append(word)
    meaningful = [w for w in found if w not in STOPWORDS]
    return (meaningful or found)[:MAX_WORDS]


def allowed_edits(word: str) -> int:
    """How many typing slips a word may hold and still be recognised."""
    if len(word) < FUZZY_MIN_CHARS:
        return 0
    return 1 if len(word) < 8 else 2


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (a swap of two neighbours counts once: "mernio" is one
    slip from "merino"); anything over `limit` is reported as limit + 1, early."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return previous[-1]


def closest(word: str, candidates: list[tuple[str, int]], *, keep: int = 3) -> list[str]:
    """The candidate terms (term, how many documents hold it) within the word's allowed
    slips, nearest and then commonest first."""
    limit = allowed_edits(word)
    if not limit:
        return []
    scored = []
    for term, documents in candidates:
        if term == word:
            continue
        distance = edit_distance(word, term, limit)
        if distance <= limit:
            scored.append((distance, -documents, term))
    return [term for _, _, term in sorted(scored)[:keep]]
