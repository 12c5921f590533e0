"""Read a corpus archive: one JSON Lines or CSV file holding an article a row.

An archive export loads without one file per article. Each row has the body
in ``text`` (or ``body``) and optional ``outlet``, ``date``, ``title``, ``url``
and ``id``. The file is streamed once: its bytes are hashed for the
fingerprint as they are read and parsed, so a million rows cost memory for
their articles, not for the file. A bad row is reported with its line number
and skipped; the rest load.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

from qa.corpus.load import MAX_ARTICLE_BYTES, CorpusLoad, Problems, parse_date, strip_controls
from qa.errors import CorpusError
from qa.records import UNDATED, UNKNOWN_OUTLET, Article

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
CSV_SUFFIXES = (".csv", ".csv.gz")
ARCHIVE_SUFFIXES = JSONL_SUFFIXES + CSV_SUFFIXES
# The body under either name; "text" wins when a row has both.
TEXT_KEYS = ("text", "body")
META_KEYS = ("outlet", "date", "title", "url")
ID_KEY = "id"
KNOWN_KEYS = frozenset((*TEXT_KEYS, *META_KEYS, ID_KEY))

# JSON escapes what it holds (a 3-byte UTF-8 character becomes a 6-byte \uXXXX,
# a 4-byte one 12 bytes) and CSV doubles quotes, so a body at the article limit
# can take up to three times that on its line, plus the other fields. A longer
# line cannot hold a body under the limit: it is skipped, never held whole.
MAX_LINE_BYTES = 4 * MAX_ARTICLE_BYTES
# Hex digits of sha256 kept for an id made from a row: 64 bits, so two distinct
# rows among a million share one with odds of about 3 in 100 million, and a
# clash is reported as a duplicate, never lost silently.
ID_HEX_DIGITS = 16
# Bytes read from the file at a time: large enough that reading costs little
# per call, small enough to be no concern for memory.
_READ_CHUNK = 1 << 20
_JSON_TYPES = {
    bool: "true/false",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


class _BadRow(Exception):
    """Why one row cannot be an article; the row is skipped and this reported."""


@dataclass(frozen=True)
class _Row:
    """One row of an archive: its fields, or why it could not be read.

    ``line`` is the physical line where the row starts (the header of a CSV
    file is line 1), or the line that could not be read.
    """

    line: int
    fields: Mapping[str, Any] = field(default_factory=dict)
    problem: str = ""


@dataclass(frozen=True)
class _RowArticle:
    """The article a row holds, whether its id was given, and notes on its values."""

    article: Article
    id_given: bool
    notes: tuple[str, ...]


def archive_suffix(path: Path) -> str | None:
    """The archive suffix ``path`` ends with (any case), or None if it is not an archive."""
    name = path.name.lower()
    # Longest first, so "x.jsonl.gz" is not taken for something ending ".gz" alone.
    return next((s for s in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True) if name.endswith(s)), None)


def not_an_archive(path: Path) -> CorpusError:
    """The error for a corpus path that is a file but not an archive."""
    return CorpusError(
        f"corpus {path} is neither a folder nor an archive file; a corpus is a folder of "
        f"article files or a file ending {', '.join(ARCHIVE_SUFFIXES)}"
    )


def load_archive(path: Path, progress: bool = False) -> CorpusLoad:
    """Load the articles of one JSON Lines or CSV archive file, streaming it once.

    JSON Lines: one JSON object a line. CSV: a header row naming the columns,
    then one article a row (quoted values may span lines). UTF-8, with or
    without a byte-order mark; gzipped when the name ends ``.gz``. Each row
    needs a non-empty ``text`` (or ``body``); ``outlet``, ``date``
    (YYYY-MM-DD), ``title``, ``url`` and ``id`` are optional, and an empty
    value counts as missing.

    A row without ``id`` gets one made from its content (see
    :func:`derived_id`), so ids stay put when rows are inserted or reordered.
    A row that cannot be an article (bad JSON, not an object, no text, a
    wrong type, over the size limit, an id already used) is reported with its
    line number and skipped; a bad date is reported and the article indexed
    as undated; fields with other names are reported once and ignored.

    Args:
        path: the archive file; its name must end with one of ARCHIVE_SUFFIXES.
        progress: show a progress bar over the file's bytes.

    Returns:
        The articles in file order, the problems, the number of rows skipped,
        and the sha256 of the file's bytes as the fingerprint.

    Raises:
        CorpusError: the file has another suffix, cannot be read or unzipped,
            is empty, has a CSV header without a text column, or holds no
            usable row.
    """
    suffix = archive_suffix(path)
    if suffix is None:
        raise not_an_archive(path)
    digest = hashlib.sha256()
    collector = _Collector(path.name)
    try:
        with (
            path.open("rb") as raw,
            tqdm(
                total=path.stat().st_size,
                unit="B",
                unit_scale=True,
                desc=f"Reading {path.name}",
                disable=not progress,
            ) as bar,
        ):
            hashed = _HashingReader(raw, digest, bar)
            buffered = io.BufferedReader(hashed, _READ_CHUNK)
            stream = gzip.GzipFile(fileobj=buffered, mode="rb") if suffix.endswith(".gz") else buffered
            lines = _Lines(stream)
            for row in _jsonl_rows(lines) if suffix in JSONL_SUFFIXES else _csv_rows(lines, path.name):
                collector.add(row)
            hashed.drain()
    except (EOFError, zlib.error) as exc:
        raise CorpusError(f"cannot unzip {path}: {exc}") from exc
    except OSError as exc:  # a gzip.BadGzipFile too, which has no strerror
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return collector.result(path, digest.hexdigest())


def iter_archive(path: Path, problems: Problems) -> Iterator[Article]:
    """The articles of one archive file in file order, streamed: one row is held at a time.

    For a build that must not hold a whole archive (``qa build-shards``); the
    rows are read and checked as :func:`load_archive` reads them, each
    problem added to ``problems``. Only the ids seen so far are kept, to
    report a repeated one.

    Raises:
        CorpusError: the file has another suffix, cannot be read or unzipped,
            or has a CSV header without a text column.
    """
    suffix = archive_suffix(path)
    if suffix is None:
        raise not_an_archive(path)
    collector = _Collector(path.name, problems)
    try:
        with path.open("rb") as raw:
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if suffix.endswith(".gz") else raw
            lines = _Lines(stream)
            for row in _jsonl_rows(lines) if suffix in JSONL_SUFFIXES else _csv_rows(lines, path.name):
                article = collector.take(row)
                if article is not None:
                    yield article
    except (EOFError, zlib.error) as exc:
        raise CorpusError(f"cannot unzip {path}: {exc}") from exc
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from exc


def derived_id(text: str, outlet: str, date: str, title: str, url: str) -> str:
    """An id for a row that has none, made from its content rather than its place.

    A line number would change for every row below an inserted one, moving
    every later id; a hash of the text and metadata stays as long as the row
    does. Identical rows get the same id, so the second is reported as a
    duplicate. Each value is length-prefixed, so no two rows hash alike by
    moving characters between fields.
    """
    digest = hashlib.sha256()
    for value in (text, outlet, date, title, url):
        data = value.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:ID_HEX_DIGITS]


class _HashingReader(io.RawIOBase):
    """A binary file whose bytes are hashed, and counted on a bar, as they are read."""

    def __init__(self, raw: BinaryIO, digest: Any, bar: tqdm) -> None:
        self._raw = raw
        self._digest = digest
        self._bar = bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)
        if count:
            self._digest.update(memoryview(buffer)[:count])
            self._bar.update(count)
        return count or 0

    def drain(self) -> None:
        """Read what the parser left (bytes after a gzip stream), so the hash covers the whole file."""
        while self.read(_READ_CHUNK):
            continue


class _Lines:
    """The numbered, decoded lines of a byte stream, none held whole past MAX_LINE_BYTES.

    A line over that size is read past and yielded as a bare newline; one that
    is not UTF-8 is yielded decoded with stand-in characters. Either way its
    problem waits in ``problems`` under its line number for the row that
    holds it to claim and report.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.number = 0
        self.problems: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        while raw := self._stream.readline(MAX_LINE_BYTES + 1):
            self.number += 1
            if self.number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                size = len(raw) + self._skip_rest_of_line()
                limit = MAX_LINE_BYTES // 2**20
                self.problems[self.number] = f"the line is {size / 2**20:.0f} MB, over the {limit} MB limit"
                yield "\n"
                continue
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.problems[self.number] = f"not UTF-8 text (bad byte at column {exc.start + 1})"
                # Decoded with stand-ins, not dropped: its quotes and commas keep a CSV parser in step.
                yield raw.decode("utf-8", "replace")

    def claim(self, last: int) -> tuple[int, str] | None:
        """The first unclaimed bad line up to ``last`` and its problem; all up to ``last`` are claimed."""
        bad = sorted(n for n in self.problems if n <= last)
        found = (bad[0], self.problems[bad[0]]) if bad else None
        for number in bad:
            del self.problems[number]
        return found

    def _skip_rest_of_line(self) -> int:
        skipped = 0
        while chunk := self._stream.readline(_READ_CHUNK):
            skipped += len(chunk)
            if chunk.endswith(b"\n"):
                break
        return skipped


def _jsonl_rows(lines: _Lines) -> Iterator[_Row]:
    """One row a non-blank line; blank lines (a trailing one, say) are not rows."""
    for text in lines:
        bad = lines.claim(lines.number)
        if bad is not None:
            yield _Row(bad[0], problem=bad[1])
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield _Row(lines.number, problem=f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            yield _Row(lines.number, problem="not valid JSON (nested too deeply)")
            continue
        if not isinstance(value, dict):
            yield _Row(lines.number, problem=f"expected a JSON object, got {_json_type(value)}")
            continue
        yield _Row(lines.number, fields=value)


def _csv_rows(lines: _Lines, name: str) -> Iterator[_Row]:
    """One row a CSV record after the header; blank lines are not rows.

    Raises:
        CorpusError: the header cannot be read, repeats a column or has no text column.
    """
    # csv caps a value at 131,072 characters, far below the article limit. The
    # cap is process-wide; it is only ever raised here, to the line limit, so
    # an over-long text is reported by its size rather than as broken CSV.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))
    reader = csv.reader(lines)
    columns: list[str] = []
    while True:
        first = reader.line_num + 1
        problem = ""
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            values, problem = [], f"not valid CSV ({exc})"
        bad = lines.claim(reader.line_num)
        if bad is not None:
            first, problem = bad
        if not columns:
            if problem:
                raise CorpusError(f"{name} line {first}: cannot read the header: {problem}")
            if values:
                columns = _csv_header(values, name, first)
        elif problem:
            yield _Row(first, problem=problem)
        elif values and len(values) != len(columns):
            yield _Row(first, problem=f"{len(values)} value(s), but the header has {len(columns)} column(s)")
        elif values:
            yield _Row(first, fields=dict(zip(columns, values, strict=True)))


def _csv_header(values: list[str], name: str, line: int) -> list[str]:
    """The column names of a header row, checked: each named once, one of them the text."""
    columns = [value.strip() for value in values]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise CorpusError(
            f"{name} line {line}: column(s) {', '.join(map(repr, repeated))} appear more than once; "
            "name each column once"
        )
    if not any(key in columns for key in TEXT_KEYS):
        raise CorpusError(
            f"{name} line {line}: the header needs a 'text' or 'body' column; it has {', '.join(columns)}"
        )
    return columns


class _Collector:
    """Gathers the articles of one archive as its rows arrive, and every problem met."""

    def __init__(self, name: str, problems: Problems | None = None) -> None:
        self.name = name
        self.articles: list[Article] = []
        self.problems = problems or Problems()
        self.rows = 0
        self.skipped = 0
        self._id_lines: dict[str, int] = {}
        self._unknown: dict[str, int] = {}  # field name -> first line it was met on
        self._both_texts = 0  # first line with both "text" and "body", 0 for none

    def add(self, row: _Row) -> None:
        """Take one row: keep its article, or report why it is skipped."""
        article = self.take(row)
        if article is not None:
            self.articles.append(article)

    def take(self, row: _Row) -> Article | None:
        """The article of one row, or None with the reason reported; the article is not kept."""
        self.rows += 1
        if row.problem:
            self._skip(row.line, row.problem)
            return None
        for key in row.fields:
            if key not in KNOWN_KEYS:
                self._unknown.setdefault(key, row.line)
        if not self._both_texts and all(row.fields.get(key) is not None for key in TEXT_KEYS):
            self._both_texts = row.line
        try:
            found = _row_article(row.fields)
        except _BadRow as exc:
            self._skip(row.line, str(exc))
            return None
        doc_id = found.article.doc_id
        earlier = self._id_lines.get(doc_id)
        if earlier is not None:
            self._skip(
                row.line,
                f"id {doc_id!r} is already used on line {earlier}"
                if found.id_given
                else f"the same text and metadata as line {earlier}",
            )
            return None
        for note in found.notes:
            self.problems.add(f"{self.name} line {row.line}: {note}")
        self._id_lines[doc_id] = row.line
        return found.article

    def result(self, path: Path, fingerprint: str) -> CorpusLoad:
        """The load, with the once-per-file notes first.

        Raises:
            CorpusError: no row, or no usable one.
        """
        if not self.rows:
            raise CorpusError(f"{path} is empty: no article row")
        if not self.articles:
            first = self.problems.named()[0]
            raise CorpusError(f"no usable article in {path} ({self.skipped} row(s) skipped; first: {first})")
        notes = []
        if self._unknown:
            named = ", ".join(f"{key!r} (first on line {line})" for key, line in self._unknown.items())
            notes.append(f"{self.name}: unknown field(s) ignored: {named}")
        if self._both_texts:
            notes.append(
                f"{self.name}: rows have both 'text' and 'body' (first on line {self._both_texts}); "
                "'text' is used, 'body' ignored"
            )
        count = len(notes) + self.problems.count
        return CorpusLoad(tuple(self.articles), self.problems.named(notes), self.skipped, fingerprint, count)

    def _skip(self, line: int, why: str) -> None:
        self.skipped += 1
        self.problems.add(f"{self.name} line {line}: {why}; row skipped")


def _row_article(fields: Mapping[str, Any]) -> _RowArticle:
    """The article one row holds.

    Raises:
        _BadRow: no usable text, or a value of the wrong type.
    """
    key = TEXT_KEYS[0] if fields.get(TEXT_KEYS[0]) is not None else TEXT_KEYS[1]
    if fields.get(key) is None:
        raise _BadRow("no 'text' or 'body'")
    text = _string(fields, key)
    if not text.strip():
        raise _BadRow(f"empty '{key}'")
    size = len(text.encode("utf-8"))
    if size > MAX_ARTICLE_BYTES:
        limit = MAX_ARTICLE_BYTES // 2**20
        raise _BadRow(f"'{key}' is {size / 2**20:.1f} MB, over the {limit} MB limit for one article")
    raw = {key: _string(fields, key) for key in META_KEYS} | {ID_KEY: _given_id(fields.get(ID_KEY))}
    outlet, raw_date, title, url, given = (strip_controls(value).strip() for value in raw.values())
    date = parse_date(raw_date) if raw_date else None
    article = Article(
        doc_id=given or derived_id(text, outlet, raw_date, title, url),
        body=text,
        outlet=outlet or UNKNOWN_OUTLET,
        date=date or UNDATED,
        title=title,
        url=url,
    )
    notes = []
    if raw_date and not date:
        notes.append(f"bad date {raw_date!r} (expected YYYY-MM-DD); indexed as undated")
    cleaned = [key for key, value in raw.items() if strip_controls(value) != value]
    if cleaned:
        notes.append(f"control character(s) removed from {', '.join(map(repr, cleaned))}")
    return _RowArticle(article, bool(given), tuple(notes))


def _string(fields: Mapping[str, Any], key: str) -> str:
    """The string under ``key`` ('' when missing or null).

    Raises:
        _BadRow: another type, or a string that is not valid Unicode (JSON can
            spell a lone surrogate, which no index can store).
    """
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadRow(f"'{key}' must be a string, got {_json_type(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        where = exc.start + 1
        raise _BadRow(f"'{key}' is not valid Unicode (a lone surrogate at character {where})") from exc
    return value


def _given_id(value: Any) -> str:
    """The row's own id as text ('' when it has none).

    Raises:
        _BadRow: an id that is neither a string nor a whole number.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str | None):
        raise _BadRow(f"'{ID_KEY}' must be a string or a whole number, got {_json_type(value)}")
    return _string({ID_KEY: value}, ID_KEY).strip()


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)
