"""Outlets and dates a question names ("According to Star Observer on 11 March 2020, ...").

A reader who names a source wants that source's account; the engine boosts
sentences from a named outlet or publication date rather than filtering on
them, since "on 9 March" may also be the date of the event itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.corpus.months import MONTH_PATTERN, MONTHS

_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+({MONTH_PATTERN})(?:,?\s+(\d{{4}}))?\b", re.I)
_MONTH_DAY = re.compile(rf"\b({MONTH_PATTERN})\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b", re.I)
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


def named_outlets(question: str, outlets: Sequence[str]) -> tuple[str, ...]:
    """The outlets of ``outlets`` whose name appears in ``question`` as a phrase."""
    lowered = question.lower()
    return tuple(o for o in outlets if o and re.search(rf"(?<!\w){re.escape(o.lower())}(?!\w)", lowered))


def named_dates(question: str) -> tuple[str, ...]:
    """Dates in ``question`` as "YYYY-MM-DD", or "--MM-DD" when no year is given."""
    found = []
    for match in _DAY_MONTH.finditer(question):
        day, month, year = match.groups()
        found.append(_iso(year, month, day))
    for match in _MONTH_DAY.finditer(question):
        month, day, year = match.groups()
        found.append(_iso(year, month, day))
    found.extend(f"{y}-{m}-{d}" for y, m, d in _ISO.findall(question))
    return tuple(dict.fromkeys(found))


def date_matches(article_date: str, named: str) -> bool:
    """Whether an article's ISO date is the named date (any year for "--MM-DD")."""
    return article_date.endswith(named[1:]) if named.startswith("--") else article_date == named


def _iso(year: str | None, month: str, day: str) -> str:
    month_number = [m.lower() for m in MONTHS].index(month.lower()) + 1
    prefix = year if year else "-"
    return f"{prefix}-{month_number:02d}-{int(day):02d}"
