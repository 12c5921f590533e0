"""Read a corpus: a folder of article files plus an optional ``sources.csv``,
or one archive file (``qa.corpus.archive``), chosen by :func:`load_corpus`.

Bad input never stops a load and never passes silently: every skipped file and
every bad metadata row is reported in ``CorpusLoad.problems``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from qa.corpus.archive import archive_suffix, load_archive, not_an_archive
from qa.corpus.load import MAX_ARTICLE_BYTES, CorpusLoad, parse_date
from qa.errors import CorpusError
from qa.records import UNDATED, UNKNOWN_OUTLET, Article

SOURCES_FILE = "sources.csv"
SOURCES_COLUMNS = ("file", "outlet", "date", "title", "url")

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


def read_sources(raw: bytes) -> tuple[dict[str, SourceRow], list[str]]:
    """Parse ``sources.csv`` bytes into rows keyed by file name, with problems.

    Row numbers in messages count the header as row 1, as a spreadsheet does.
    """
    problems: list[str] = []
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return {}, [f"{SOURCES_FILE}: not UTF-8 text, ignored"]
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "file" not in reader.fieldnames:
        return {}, [
            f"{SOURCES_FILE}: needs a header with columns {', '.join(SOURCES_COLUMNS)}; "
            f"got {reader.fieldnames}, ignored"
        ]
    # title and url are optional; without outlet or date every citation is vaguer.
    missing = [c for c in ("outlet", "date") if c not in reader.fieldnames]
    extra = [c for c in reader.fieldnames if c not in SOURCES_COLUMNS]
    if missing:
        problems.append(f"{SOURCES_FILE}: no column {', '.join(missing)}; left unknown for every article")
    if extra:
        problems.append(f"{SOURCES_FILE}: unknown column {', '.join(map(str, extra))}, ignored")
    rows: dict[str, SourceRow] = {}
    for number, row in enumerate(reader, start=2):
        name = (row.get("file") or "").strip()
        if None in row:  # more values than the header has columns
            problems.append(
                f"{SOURCES_FILE} row {number}: {len(row[None])} value(s) past the last column, ignored"
            )
        if not name:
            problems.append(f"{SOURCES_FILE} row {number}: empty 'file' column, row ignored")
            continue
        raw_date = (row.get("date") or "").strip()
        date = parse_date(raw_date) if raw_date else None
        if raw_date and date is None:
            problems.append(
                f"{SOURCES_FILE} row {number}: bad date {raw_date!r} for {name} "
                "(expected YYYY-MM-DD); date ignored"
            )
        if name in rows:
            problems.append(f"{SOURCES_FILE} row {number}: {name} listed again, later row wins")
        rows[name] = SourceRow(
            outlet=(row.get("outlet") or "").strip(),
            date=date or "",
            title=(row.get("title") or "").strip(),
            url=(row.get("url") or "").strip(),
        )
    return rows, problems


def load_corpus(path: Path | str, progress: bool = False) -> CorpusLoad:
    """Load a corpus: a folder of article files, or one archive file of articles.

    A folder is read as :func:`load_folder` describes; a ``.jsonl`` or ``.csv``
    file (optionally gzipped) as :func:`qa.corpus.archive.load_archive` does. The
    suffix decides, so a misnamed file is refused rather than misread.

    Args:
        path: the corpus folder or archive file.
        progress: show a progress bar while an archive file is read.

    Returns:
        The articles, every problem met on the way, and a fingerprint of the
        corpus content.

    Raises:
        CorpusError: the path does not exist, is a file of another kind, or
            holds no usable article.
    """
    path = Path(path)
    if path.is_dir():
        return load_folder(path)
    if archive_suffix(path) is None:
        if path.exists():
            raise not_an_archive(path)
        raise CorpusError(f"corpus folder not found: {path}")
    if not path.exists():
        raise CorpusError(f"corpus file not found: {path}")
    return load_archive(path, progress)


def corpus_signature(path: Path | str) -> str:
    """A cheap fingerprint of a corpus from file metadata alone; no content is read.

    It changes when a file is added, removed, resized or touched, so a caller
    can skip re-reading a corpus whose signature matches the one it recorded.
    Names, not full paths, go in: a moved corpus keeps its signature.

    Args:
        path: the corpus folder or archive file, as for :func:`load_corpus`.

    Returns:
        A sha256 hex digest of each non-hidden regular file's name, size and
        modification time (for a folder, ``sources.csv`` among them), or of the
        archive file's name, size and modification time.

    Raises:
        CorpusError: the path does not exist or is a file of another kind.
    """
    path = Path(path)
    try:
        if path.is_dir():
            with os.scandir(path) as entries:
                stats = sorted(
                    (entry.name, entry.stat())
                    for entry in entries
                    if entry.is_file() and not entry.name.startswith(".")
                )
        else:
            stats = [(path.name, path.stat())]
    except FileNotFoundError as exc:
        kind = "file" if archive_suffix(path) is not None else "folder"
        raise CorpusError(f"corpus {kind} not found: {path}") from exc
    except OSError as exc:
        raise CorpusError(f"cannot read the corpus {path}: {exc.strerror}") from exc
    if not path.is_dir() and archive_suffix(path) is None:
        raise not_an_archive(path)
    # The kind goes in too: a folder holding just x.jsonl is another corpus than x.jsonl.
    digest = hashlib.sha256(b"folder\n" if path.is_dir() else b"archive\n")
    for name, stat in stats:
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def load_folder(corpus_dir: Path) -> CorpusLoad:
    """Load every article file in ``corpus_dir`` (not recursive).

    Every regular, non-hidden file other than ``sources.csv`` is an article.
    ``sources.csv`` wins over a date prefix; an article with neither outlet
    nor date still loads and is cited as "Unknown outlet" / "undated".

    Raises:
        CorpusError: the folder holds no usable article.
    """
    digest = hashlib.sha256()
    sources: dict[str, SourceRow] = {}
    problems: list[str] = []
    sources_path = corpus_dir / SOURCES_FILE
    if sources_path.is_file():
        try:
            raw = sources_path.read_bytes()
        except OSError as exc:
            raise CorpusError(f"cannot read {sources_path}: {exc.strerror}") from exc
        digest.update(b"sources\0" + hashlib.sha256(raw).digest())
        sources, problems = read_sources(raw)

    try:
        files = sorted(
            p
            for p in corpus_dir.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name != SOURCES_FILE
        )
    except OSError as exc:
        raise CorpusError(f"cannot read the corpus folder {corpus_dir}: {exc.strerror}") from exc
    known = {p.name for p in files}
    for name in sources:
        if name not in known:
            problems.append(f"{SOURCES_FILE}: {name} is listed but no such file in {corpus_dir}")

    articles: list[Article] = []
    seen_ids: set[str] = set()
    skipped = 0
    for path in files:
        try:
            size = path.stat().st_size
            raw = path.read_bytes() if size <= MAX_ARTICLE_BYTES else b""
        except OSError as exc:
            skipped += 1
            problems.append(f"skipped {path.name}: cannot be read ({exc.strerror})")
            continue
        if size > MAX_ARTICLE_BYTES:
            # Its size still counts in the fingerprint: replacing it re-indexes.
            digest.update(path.name.encode() + b"\0" + str(size).encode())
            skipped += 1
            problems.append(
                f"skipped {path.name}: {size / 2**20:.0f} MB is over the "
                f"{MAX_ARTICLE_BYTES // 2**20} MB limit for one article"
            )
            continue
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(raw).digest())
        article, problem = _read_article(path, raw, sources.get(path.name), seen_ids)
        if article is None:
            skipped += 1
            problems.append(f"skipped {path.name}: {problem}")
            continue
        seen_ids.add(article.doc_id)
        articles.append(article)
    if not articles:
        raise CorpusError(
            f"no usable article in {corpus_dir} ({skipped} file(s) skipped); articles are UTF-8 text files"
        )
    return CorpusLoad(tuple(articles), tuple(problems), skipped, digest.hexdigest())


def _read_article(
    path: Path, raw: bytes, source: SourceRow | None, seen_ids: set[str]
) -> tuple[Article | None, str]:
    """Decode one file into an Article, or say why it cannot be one."""
    doc_id = path.stem
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
        "",
    )
