"""The built-in quote source, so a fresh install has a job that works offline.

``createTestJob`` makes a fetch job without a URL; the daemon then fetches
``GET /quote`` from this API. The quotes are old enough to be in the public domain.
"""

from __future__ import annotations

import random
from typing import TypedDict


class Quote(TypedDict):
    content: str
    author: str


QUOTES: tuple[Quote, ...] = (
    {"content": "Well begun is half done.", "author": "Aristotle"},
    {"content": "The unexamined life is not worth living.", "author": "Socrates"},
    {"content": "Know thyself.", "author": "Inscription at Delphi"},
    {"content": "No man ever steps in the same river twice.", "author": "Heraclitus"},
    {
        "content": "Waste no more time arguing what a good man should be. Be one.",
        "author": "Marcus Aurelius",
    },
    {
        "content": "It is not that we have a short time to live, "
        "but that we waste a lot of it.",
        "author": "Seneca",
    },
    {
        "content": "Patience is bitter, but its fruit is sweet.",
        "author": "Jean-Jacques Rousseau",
    },
    {"content": "Lost time is never found again.", "author": "Benjamin Franklin"},
    {"content": "Well done is better than well said.", "author": "Benjamin Franklin"},
    {
        "content": "The journey of a thousand miles begins with one step.",
        "author": "Lao Tzu",
    },
    {"content": "Nothing is more useful than silence.", "author": "Menander"},
    {"content": "Brevity is the soul of wit.", "author": "William Shakespeare"},
    {"content": "Fortune favours the bold.", "author": "Terence"},
    {
        "content": "Simplicity is the ultimate sophistication.",
        "author": "Leonardo da Vinci",
    },
    {
        "content": "Adopt the pace of nature: her secret is patience.",
        "author": "Ralph Waldo Emerson",
    },
    {"content": "Time is the wisest counsellor of all.", "author": "Pericles"},
    {
        "content": "Every man is the architect of his own fortune.",
        "author": "Appius Claudius Caecus",
    },
    {"content": "Haste makes waste.", "author": "John Heywood"},
    {
        "content": "He who has a why to live can bear almost any how.",
        "author": "Friedrich Nietzsche",
    },
    {
        "content": "Energy and persistence conquer all things.",
        "author": "Benjamin Franklin",
    },
)


def random_quote(rng: random.Random | None = None) -> Quote:
    """One quote, picked at random."""
    return (rng or random).choice(QUOTES)
