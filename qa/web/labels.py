"""How a citation reads: "1 NEWS, 9 March 2020, title". Pure functions."""

from __future__ import annotations

import datetime as dt

from qa.corpus.months import MONTHS
from qa.records import UNDATED, Citation, Difference


def format_date(iso_date: str) -> str:
    """ "2020-03-09" -> "9 March 2020"; anything else is shown as it is."""
    try:
        day = dt.date.fromisoformat(iso_date)
    except ValueError:
        return iso_date or UNDATED
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def citation_label(citation: Citation, separator: str = ", ") -> str:
    """Outlet, date and (when known) title, joined by ``separator``."""
    parts = [citation.outlet, format_date(citation.date)]
    if citation.title:
        parts.append(citation.title)
    return separator.join(parts)


def difference_line(difference: Difference) -> str:
    """ "$43,350 (Fox News, 2013-02-20) vs $43,000 (HuffPost, 2013-02-20; CNN, 2013-02-21)".

    Articles giving the same value share one entry; ``values`` keeps agreeing articles together.
    """
    entries: list[tuple[str, list[str]]] = []
    last = None
    for value in difference.values:
        if value.normalized != last:
            entries.append((value.text, []))
            last = value.normalized
        entries[-1][1].append(f"{value.outlet}, {value.date}")
    return " vs ".join(f"{text} ({'; '.join(sources)})" for text, sources in entries)
