"""How a citation reads: "1 NEWS, 9 March 2020, title". Pure functions."""

from __future__ import annotations

import datetime as dt

from qa.corpus.months import MONTHS
from qa.records import UNDATED, Citation, Difference, ReportedValue


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


def value_groups(difference: Difference) -> list[list[ReportedValue]]:
    """The values of ``difference`` in runs that give the same normalised value (one entry when shown)."""
    groups: list[list[ReportedValue]] = []
    for value in difference.values:
        if groups and groups[-1][0].normalized == value.normalized:
            groups[-1].append(value)
        else:
            groups.append([value])
    return groups


def difference_line(difference: Difference) -> str:
    """ "$43,350 (Fox News, 2013-02-20) vs $43,000 (HuffPost, 2013-02-20; CNN, 2013-02-21)"."""
    return " vs ".join(
        f"{group[0].text} ({'; '.join(f'{v.outlet}, {v.date}' for v in group)})"
        for group in value_groups(difference)
    )
