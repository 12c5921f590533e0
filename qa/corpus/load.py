"""What every corpus reader returns, and the limits and text rules they share.

A leaf module so that the folder reader (``qa.corpus.folder``) and the archive reader
(``qa.corpus.archive``) can both use it without importing each other.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from qa.records import Article

# A news article is tens of kilobytes; the longest features reach a few
# hundred. An article past this is a dump or a mistake, and embedding it would
# take hours of CPU and gigabytes of memory, so it is skipped, and a file past
# it is never read whole.
MAX_ARTICLE_BYTES = 5 * 1024 * 1024
# Problems of one corpus named one by one; past these they are only counted.
# One bad export step makes thousands of problems alike, and the first hundred
# show the cause. Every named problem is printed on each start and kept in
# manifest.json: a sources.csv naming a million missing files made a 93 MB
# manifest, and every later `qa ask` printed a million lines (9.5 s, 1.1 GB).
MAX_NAMED_PROBLEMS = 100

# C0 and C1 control characters and DEL, but not tab, line feed or carriage
# return. No metadata value keeps one: a NUL made "B\x00" an outlet beside "B",
# and an escape sequence in a title steers the terminal it is printed on.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# In a message every control character is shown escaped, line breaks too: a problem is one line.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class CorpusLoad:
    """The articles that loaded, what was skipped and why, and a fingerprint.

    ``problems`` names at most MAX_NAMED_PROBLEMS, then a line counts the rest;
    ``problem_count`` and ``skipped`` count them all.
    """

    articles: tuple[Article, ...]
    problems: tuple[str, ...]
    skipped: int
    fingerprint: str
    problem_count: int


class Problems:
    """The problems met reading a corpus: the first MAX_NAMED_PROBLEMS by name, the rest counted."""

    def __init__(self) -> None:
        self.count = 0
        self._named: list[str] = []

    def add(self, message: str) -> None:
        """Count a problem, and keep its message (made printable) while fewer than the limit are kept."""
        self.count += 1
        if len(self._named) < MAX_NAMED_PROBLEMS:
            self._named.append(printable(message))

    def named(self, first: Sequence[str] = ()) -> tuple[str, ...]:
        """What to report: ``first`` (notes on the whole corpus), the problems kept, a count of the rest."""
        return bounded([*map(printable, first), *self._named], len(first) + self.count)


def bounded(problems: Sequence[str], count: int) -> tuple[str, ...]:
    """The first MAX_NAMED_PROBLEMS of ``problems``, then a line counting the rest of ``count``."""
    named = tuple(problems[:MAX_NAMED_PROBLEMS])
    rest = count - len(named)
    return (*named, f"… and {rest:,} more problems") if rest > 0 else named


def printable(message: str) -> str:
    """``message`` on one line and safe to print or store: control characters escaped (``\\x1b``).

    So are the bytes of a file name that is not UTF-8 (Python holds them as lone surrogates).
    """
    try:  # a file name's undecodable bytes, held as surrogates, come back as bytes
        raw = message.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = message.encode("utf-8", "backslashreplace")
    text = raw.decode("utf-8", "backslashreplace")
    return _UNPRINTABLE.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def strip_controls(value: str) -> str:
    """``value`` without control characters other than tab and line breaks."""
    return _CONTROLS.sub("", value)


def parse_date(value: str) -> str | None:
    """Return ``value`` as ISO YYYY-MM-DD if it is a real calendar date, else None."""
    try:
        return dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        return None
