"""Read a corpus: a folder of article files plus an optional ``sources.csv``,
or one archive file (``qa.corpus.archive``), chosen by :func:`load_corpus`.

Bad input never stops a load and never passes silently: every skipped file and
every bad metadata row is reported in ``CorpusLoad.problems``.

A corpus often comes from someone else, so a folder keeps to itself: a file
reached through a symlink that resolves outside the folder is skipped and
named, unless the caller opts in with ``follow_symlinks``. An archive file is
read wherever the path the user named leads: that choice is theirs.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.corpus.archive import archive_suffix, load_archive, not_an_archive
from qa.corpus.load import MAX_ARTICLE_BYTES, CorpusLoad, Problems, parse_date, strip_controls
from qa.errors import CorpusError
from qa.records import UNDATED, UNKNOWN_OUTLET, Article

SOURCES_FILE = "sources.csv"
SOURCES_COLUMNS = ("file", "outlet", "date", "title", "url")
# The columns that are shown with an article, cleaned of control characters.
_SHOWN_COLUMNS = ("outlet", "date", "title", "url")
OUTSIDE = "a symlink to a file outside the corpus folder"
# A file is opened with this flag, so one listed as a plain file (or as the file
# a link resolves to) and swapped for a symlink before it is read is refused,
# not followed. Where the platform lacks it, the listing's check stands alone.
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
# Bytes of sources.csv read at a time while it is hashed and checked as UTF-8.
_READ_CHUNK = 1 << 20

# The bundled articles start with " date YYYY-MM-DD " before the body.
_DATE_PREFIX = re.compile(r"\A\s*date\s+(\d{4}-\d{2}-\d{2})\s+")


@dataclass(frozen=True)
class SourceRow:
    """Metadata for one article file, from ``sources.csv``."""

    outlet: str
    date: str
    title: str
    url: str


def split_date_prefix(text: str) -> tuple[str | None, str]:
    """Split a leading ``date YYYY-MM-DD`` marker from the body.

    Returns:
        (date or None, body). The body keeps everything after the marker, with
        leading whitespace removed, so offsets index the text a reader sees.
    """
    match = _DATE_PREFIX.match(text)
    if match is None:
        return None, text.lstrip()
    return parse_date(match.group(1)), text[match.end() :].lstrip()


def read_sources(lines: Iterable[str], present: Container[str], problems: Problems) -> dict[str, SourceRow]:
    """Parse ``sources.csv`` text into rows keyed by file name, for the files ``present``.

    A row naming a file that is not there is reported and not kept, so a sheet
    of a million rows costs memory only for the files there are. Row numbers
    in messages count the header as row 1, as a spreadsheet does.
    """
    reader = csv.DictReader(lines)
    try:
        if not _sources_header(reader.fieldnames, problems):
            return {}
        rows: dict[str, SourceRow] = {}
        for number, row in enumerate(reader, start=2):
            name = (row.get("file") or "").strip()
            if None in row:  # more values than the header has columns
                problems.add(
                    f"{SOURCES_FILE} row {number}: {len(row[None])} value(s) past the last column, ignored"
                )
            if not name:
                problems.add(f"{SOURCES_FILE} row {number}: empty 'file' column, row ignored")
            elif name not in present:
                problems.add(f"{SOURCES_FILE} row {number}: {name} is listed but no such file")
            else:
                if name in rows:
                    problems.add(f"{SOURCES_FILE} row {number}: {name} listed again, later row wins")
                rows[name] = _source_row(row, f"{SOURCES_FILE} row {number}", name, problems)
    except csv.Error as exc:  # a value past csv's size limit, say
        problems.add(f"{SOURCES_FILE} row {reader.line_num}: not valid CSV ({exc}); the rest is ignored")
        return {}
    return rows


def _sources_header(columns: Sequence[str] | None, problems: Problems) -> bool:
    """Report what the header lacks or has too many of; False when it has no ``file`` column."""
    if columns is None or "file" not in columns:
        wanted = ", ".join(SOURCES_COLUMNS)
        problems.add(f"{SOURCES_FILE}: needs a header with columns {wanted}; got {columns}, ignored")
        return False
    # title and url are optional; without outlet or date every citation is vaguer.
    missing = [c for c in ("outlet", "date") if c not in columns]
    extra = [c for c in columns if c not in SOURCES_COLUMNS]
    if missing:
        problems.add(f"{SOURCES_FILE}: no column {', '.join(missing)}; left unknown for every article")
    if extra:
        problems.add(f"{SOURCES_FILE}: unknown column {', '.join(map(str, extra))}, ignored")
    return True


def _source_row(row: dict[Any, Any], where: str, name: str, problems: Problems) -> SourceRow:
    """The metadata of one row, cleaned of control characters; each cleaning and a bad date reported."""
    raw = {column: (row.get(column) or "") for column in _SHOWN_COLUMNS}
    values = {column: strip_controls(value).strip() for column, value in raw.items()}
    cleaned = [column for column in _SHOWN_COLUMNS if strip_controls(raw[column]) != raw[column]]
    if cleaned:
        problems.add(f"{where}: control character(s) removed from {', '.join(cleaned)}")
    date = parse_date(values["date"]) if values["date"] else None
    if values["date"] and date is None:
        problems.add(f"{where}: bad date {values['date']!r} for {name} (expected YYYY-MM-DD); date ignored")
    return SourceRow(outlet=values["outlet"], date=date or "", title=values["title"], url=values["url"])


def load_corpus(path: Path | str, progress: bool = False, follow_symlinks: bool = False) -> CorpusLoad:
    """Load a corpus: a folder of article files, or one archive file of articles.

    A folder is read as :func:`load_folder` describes; a ``.jsonl`` or ``.csv``
    file (optionally gzipped) as :func:`qa.corpus.archive.load_archive` does. The
    suffix decides, so a misnamed file is refused rather than misread.

    Args:
        path: the corpus folder or archive file.
        progress: show a progress bar while an archive file is read.
        follow_symlinks: read a folder's files through symlinks that lead
            outside it too (by default they are skipped and named).

    Returns:
        The articles, every problem met on the way, and a fingerprint of the
        corpus content.

    Raises:
        CorpusError: the path does not exist, is a file of another kind, or
            holds no usable article.
    """
    path = Path(path)
    if path.is_dir():
        return load_folder(path, follow_symlinks)
    if archive_suffix(path) is None:
        if path.exists():
            raise not_an_archive(path)
        raise CorpusError(f"corpus folder not found: {path}")
    if not path.exists():
        raise CorpusError(f"corpus file not found: {path}")
    return load_archive(path, progress)


def corpus_signature(path: Path | str, follow_symlinks: bool = False) -> str:
    """A cheap fingerprint of a corpus from file metadata alone; no content is read.

    It changes when a file is added, removed, resized or touched, or a symlink
    retargeted, so a caller can skip re-reading a corpus whose signature
    matches the one it recorded. Names, not full paths, go in: a moved corpus
    keeps its signature.

    Args:
        path: the corpus folder or archive file, as for :func:`load_corpus`.
        follow_symlinks: as for :func:`load_corpus`; it changes the signature
            only of a folder holding a symlink that leads outside it.

    Returns:
        A sha256 hex digest of each non-hidden regular file's name, size and
        modification time (for a folder, ``sources.csv`` among them; for a
        symlink, its target's, its own text and whether it is read), or of the
        archive file's name, size and modification time.

    Raises:
        CorpusError: the path does not exist or is a file of another kind.
    """
    path = Path(path)
    try:
        if path.is_dir():
            lines = [_signature_line(entry, follow_symlinks) for entry in _list_folder(path)]
        else:
            stat = path.stat()
            lines = [f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n"]
    except FileNotFoundError as exc:
        kind = "file" if archive_suffix(path) is not None else "folder"
        raise CorpusError(f"corpus {kind} not found: {path}") from exc
    except OSError as exc:
        raise CorpusError(f"cannot read the corpus {path}: {exc.strerror}") from exc
    if not path.is_dir() and archive_suffix(path) is None:
        raise not_an_archive(path)
    # The kind goes in too: a folder holding just x.jsonl is another corpus than x.jsonl.
    digest = hashlib.sha256(b"folder\n" if path.is_dir() else b"archive\n")
    for line in lines:
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


@dataclass(frozen=True)
class _Entry:
    """A non-hidden regular file of a corpus folder, named in it directly or through a symlink."""

    name: str
    path: Path  # where its bytes are: the entry itself, or the file its symlink resolves to
    stat: os.stat_result  # of that file
    link: str = ""  # the symlink's own text; '' for a plain file
    outside: bool = False  # a symlink that resolves outside the corpus folder


def _list_folder(corpus_dir: Path) -> list[_Entry]:
    """The non-hidden regular files of ``corpus_dir``, a symlink to one among them, sorted by name.

    Raises:
        OSError: the folder cannot be listed.
    """
    # Resolved, so that a corpus folder named through a symlink still holds its own files.
    root = corpus_dir.resolve()
    entries = []
    with os.scandir(corpus_dir) as found:
        for entry in found:
            if entry.name.startswith(".") or not entry.is_file():  # is_file follows a symlink
                continue
            if not entry.is_symlink():
                entries.append(_Entry(entry.name, Path(entry.path), entry.stat()))
                continue
            real = Path(os.path.realpath(entry.path))
            link = os.readlink(entry.path)
            entries.append(_Entry(entry.name, real, entry.stat(), link, not real.is_relative_to(root)))
    return sorted(entries, key=lambda entry: entry.name)


def _signature_line(entry: _Entry, follow_symlinks: bool) -> str:
    line = f"{entry.name}\0{entry.stat.st_size}\0{entry.stat.st_mtime_ns}"
    if entry.link:
        # Its text catches a link moved to a file alike in size and time; the verdict, a link
        # out read under --follow-symlinks and skipped without it.
        read = "skipped" if entry.outside and not follow_symlinks else "read"
        line += f"\0{entry.link}\0{read}"
    return line + "\n"


def load_folder(corpus_dir: Path, follow_symlinks: bool = False) -> CorpusLoad:
    """Load every article file in ``corpus_dir`` (not recursive).

    Every regular, non-hidden file other than ``sources.csv`` is an article.
    ``sources.csv`` wins over a date prefix; an article with neither outlet
    nor date still loads and is cited as "Unknown outlet" / "undated". A
    symlink that resolves outside ``corpus_dir`` is skipped and named, unless
    ``follow_symlinks``: a corpus from someone else could otherwise put any
    file this process can read (``/etc/passwd``) in the index and the app.

    Raises:
        CorpusError: the folder holds no usable article.
    """
    digest = hashlib.sha256()
    problems = Problems()
    reading = FolderArticles(corpus_dir, problems, follow_symlinks, digest)
    articles = list(reading)
    if not articles:
        raise CorpusError(
            f"no usable article in {corpus_dir} ({reading.skipped} file(s) skipped); "
            "articles are UTF-8 text files"
        )
    return CorpusLoad(tuple(articles), problems.named(), reading.skipped, digest.hexdigest(), problems.count)


class FolderArticles:
    """The articles of a corpus folder in file-name order, one file read at a time as they are iterated.

    :func:`load_folder` keeps them all; a streaming build (``qa build-shards``)
    holds one at a time. Each problem goes into ``problems``; ``skipped``
    counts the files that could not be an article.
    """

    def __init__(
        self, corpus_dir: Path, problems: Problems, follow_symlinks: bool = False, digest: Any = None
    ) -> None:
        self.corpus_dir = corpus_dir
        self.problems = problems
        self.follow_symlinks = follow_symlinks
        # Only a load's fingerprint needs the bytes hashed; a throwaway hash otherwise.
        self.digest = digest if digest is not None else hashlib.sha256()
        self.skipped = 0

    def __iter__(self) -> Iterator[Article]:
        """Raises CorpusError when the folder cannot be listed."""
        try:
            entries = _list_folder(self.corpus_dir)
        except OSError as exc:
            raise CorpusError(f"cannot read the corpus folder {self.corpus_dir}: {exc.strerror}") from exc
        shut_out = {entry.name for entry in entries if entry.outside and not self.follow_symlinks}
        sheet = next((entry for entry in entries if entry.name == SOURCES_FILE), None)
        sources: dict[str, SourceRow] = {}
        if sheet is not None and sheet.name in shut_out:
            self.problems.add(f"{SOURCES_FILE}: {OUTSIDE}, ignored")
        elif sheet is not None:
            present = {entry.name for entry in entries}
            sources = _read_sources_file(sheet, present, self.problems, self.digest)
        seen_ids: set[str] = set()
        for entry in entries:
            if entry.name == SOURCES_FILE:
                continue
            if entry.name in shut_out:
                article, problem = None, f"{OUTSIDE} (--follow-symlinks reads it)"
            else:
                article, problem = _read_file(entry, sources.get(entry.name), seen_ids, self.digest)
            if article is None:
                self.skipped += 1
                self.problems.add(f"skipped {entry.name}: {problem}")
                continue
            if problem:
                self.problems.add(f"{entry.name}: {problem}")
            seen_ids.add(article.doc_id)
            yield article


def _open_file(path: Path) -> io.BufferedReader:
    """``path`` opened for reading, refusing a symlink (see ``_NO_FOLLOW``)."""
    return open(os.open(path, os.O_RDONLY | _NO_FOLLOW), "rb")


def _read_sources_file(
    entry: _Entry, present: Container[str], problems: Problems, digest: Any
) -> dict[str, SourceRow]:
    """The rows of ``sources.csv`` (see :func:`read_sources`); its sha256 goes into ``digest``.

    The file is read twice, in chunks, never whole: once to hash it and check
    it is UTF-8 (a sheet that is not is ignored whole), once to parse it.

    Raises:
        CorpusError: it cannot be read.
    """
    try:
        with _open_file(entry.path) as handle:
            sha256, utf8 = _hash_and_check_utf8(handle)
            digest.update(b"sources\0" + sha256)
            if not utf8:
                problems.add(f"{SOURCES_FILE}: not UTF-8 text, ignored")
                return {}
            handle.seek(0)
            return read_sources(io.TextIOWrapper(handle, encoding="utf-8-sig", newline=""), present, problems)
    except OSError as exc:
        raise CorpusError(f"cannot read {entry.path}: {exc.strerror}") from exc


def _hash_and_check_utf8(handle: io.BufferedReader) -> tuple[bytes, bool]:
    """The sha256 of the rest of ``handle``, and whether it is UTF-8 text, read a chunk at a time."""
    hashed = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    while chunk := handle.read(_READ_CHUNK):
        hashed.update(chunk)
        utf8 = utf8 and _decodes(decoder, chunk)
    return hashed.digest(), utf8 and _decodes(decoder, b"", final=True)


def _decodes(decoder: codecs.IncrementalDecoder, data: bytes, final: bool = False) -> bool:
    try:
        decoder.decode(data, final)
    except UnicodeDecodeError:
        return False
    return True


def _read_file(
    entry: _Entry, source: SourceRow | None, seen_ids: set[str], digest: Any
) -> tuple[Article | None, str]:
    """Read one article file (its content goes into ``digest``): the Article and a note, or None and why."""
    if not _is_utf8(entry.name):
        return None, "its name is not UTF-8 text, so it cannot be an id"
    try:
        with _open_file(entry.path) as handle:
            size = os.fstat(handle.fileno()).st_size
            raw = handle.read() if size <= MAX_ARTICLE_BYTES else b""
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    name = os.fsencode(entry.name)
    if size > MAX_ARTICLE_BYTES:
        # Its size still counts in the fingerprint: replacing it re-indexes.
        digest.update(name + b"\0" + str(size).encode())
        limit = MAX_ARTICLE_BYTES // 2**20
        return None, f"{size / 2**20:.0f} MB is over the {limit} MB limit for one article"
    digest.update(name + b"\0" + hashlib.sha256(raw).digest())
    return _read_article(Path(entry.name).stem, raw, source, seen_ids)


def _is_utf8(name: str) -> bool:
    """Whether a file name is UTF-8 text (one that is not holds its bytes as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_article(
    stem: str, raw: bytes, source: SourceRow | None, seen_ids: set[str]
) -> tuple[Article | None, str]:
    """Decode one file into an Article and a note on its id, or None and why it cannot be one."""
    doc_id = strip_controls(stem)
    if doc_id in seen_ids:
        return None, f"another file already has the id {doc_id!r}"
    if b"\0" in raw:
        return None, "binary file (contains NUL bytes)"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (bad byte at position {exc.start})"
    prefix_date, body = split_date_prefix(text)
    if not body.strip():
        return None, "empty file"
    outlet = source.outlet if source and source.outlet else UNKNOWN_OUTLET
    date = (source.date if source and source.date else None) or prefix_date or UNDATED
    return (
        Article(
            doc_id=doc_id,
            body=body,
            outlet=outlet,
            date=date,
            title=source.title if source else "",
            url=source.url if source else "",
        ),
        f"control character(s) removed from its id, now {doc_id!r}" if doc_id != stem else "",
    )
