"""What every corpus reader returns, and the limit and date rule they share.

A leaf module so that the folder reader (``qa.corpus.folder``) and the archive reader
(``qa.corpus.archive``) can both use it without importing each other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from qa.records import Article

# A news article is tens of kilobytes; the longest features reach a few
# hundred. An article past this is a dump or a mistake, and embedding it would
# take hours of CPU and gigabytes of memory, so it is skipped, and a file past
# it is never read whole.
MAX_ARTICLE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class CorpusLoad:
    """The articles that loaded, what was skipped and why, and a fingerprint."""

    articles: tuple[Article, ...]
    problems: tuple[str, ...]
    skipped: int
    fingerprint: str


def parse_date(value: str) -> str | None:
    """Return ``value`` as ISO YYYY-MM-DD if it is a real calendar date, else None."""
    try:
        return dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        return None
