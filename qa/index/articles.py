"""Article bodies and metadata in SQLite, read one article at a time.

The index folder's ``articles.sqlite`` holds one row per article version: its
``row`` is the article number that sentence and passage arrays refer to, so a
row is never renumbered or reused. An edited article gets a new row and its
old row is marked dead (``live = 0``, body cleared), which keeps every stored
offset pointing at the text it was computed from while no dead text can be
served. A query reads only the bodies it cites, through a small cache, so
opening an index costs one query for the metadata columns, not a read of the
whole corpus.

An update does not copy the whole table: ``articles.sqlite`` stays shared
with the previous index (a hard link, never written) while the rows added
since, and the rows retired since, go into a small ``articles-delta.sqlite``
that each update copies and extends; reads see both as one table. When the
delta passes :data:`DELTA_MAX_ROWS` an update folds it into a new
``articles.sqlite``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.index.lexical import date_key
from qa.records import Article

ARTICLES_FILE = "articles.sqlite"
# Articles kept decoded in memory: a question cites a handful and the web
# app's article view opens one at a time, so a few hundred covers every
# article of recent questions without holding a large archive's bodies.
_CACHE_ARTICLES = 256
_COLUMNS = "doc_id, body, outlet, date, title, url"
DELTA_FILE = "articles-delta.sqlite"
# Rows (added and retired) the delta may hold before an update folds it into
# articles.sqlite. Each update copies and hashes the delta, so its size is
# paid on every update; a fold copies and hashes the whole table (about
# 150 MB at 1M passages, a second here). At about 3 kB a row, 2,000 rows are
# 6 MB (tens of milliseconds), and a fold comes once per 2,000 changed articles.
DELTA_MAX_ROWS = 2_000
# Every read goes through the view ``every``: the table, plus the delta when
# there is one, with the rows the delta retired dead and their bodies blank.
_ARM = "SELECT row, doc_id, {body} AS body, outlet, date, title, url, digest, {live} AS live FROM {table}"
_RETIRED = "row IN (SELECT row FROM delta.retired)"
_ONE_TABLE = "CREATE TEMP VIEW every AS " + _ARM.format(body="body", live="live", table="main.articles")
_WITH_DELTA = "CREATE TEMP VIEW every AS " + " UNION ALL ".join(
    _ARM.format(body=f"CASE WHEN {_RETIRED} THEN '' ELSE body END", live=f"live AND NOT {_RETIRED}", table=t)
    for t in ("main.articles", "delta.articles")
)


def article_digest(article: Article) -> str:
    """sha256 of an article's content and metadata: equal digests mean nothing to re-index."""
    fields = [article.doc_id, article.body, article.outlet, article.date, article.title, article.url]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ArticleColumns:
    """Per-row metadata for every article row, read in one query at load.

    ``outlet`` holds each row's outlet name (dead rows included, so row
    numbers index it directly); ``date_key`` is :func:`qa.index.lexical.date_key`
    of each date.
    """

    outlet: np.ndarray
    date_key: np.ndarray
    live: np.ndarray

    @property
    def outlets(self) -> tuple[str, ...]:
        """The distinct outlets of live articles, sorted."""
        return tuple(sorted(set(self.outlet[self.live].tolist())))


def create_article_table(path: Path) -> None:
    """Create an empty ``articles.sqlite`` at ``path``."""
    with _writer(path) as db:
        db.execute(
            "CREATE TABLE articles (row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, body TEXT NOT NULL, "
            "outlet TEXT NOT NULL, date TEXT NOT NULL, title TEXT NOT NULL, url TEXT NOT NULL, "
            "digest TEXT NOT NULL, live INTEGER NOT NULL)"
        )
        db.execute("CREATE INDEX articles_doc_id ON articles (doc_id, live)")


def add_articles(path: Path, first_row: int, articles: Iterable[Article]) -> None:
    """Append ``articles`` as live rows numbered from ``first_row``."""
    with _writer(path) as db:
        db.executemany(
            "INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (
                (first_row + i, a.doc_id, a.body, a.outlet, a.date, a.title, a.url, article_digest(a))
                for i, a in enumerate(articles)
            ),
        )


def retire_articles(path: Path, rows: Iterable[int]) -> None:
    """Mark article ``rows`` dead and drop their bodies (the text left the corpus)."""
    with _writer(path) as db:
        db.executemany("UPDATE articles SET live = 0, body = '' WHERE row = ?", ((r,) for r in rows))


def stage_articles(
    old_dir: Path, new_dir: Path, first_row: int, retired: Sequence[int], articles: Sequence[Article]
) -> None:
    """Write ``new_dir``'s article files: ``old_dir``'s, less ``retired`` rows, plus ``articles``.

    The rows go into a copy of the old delta, ``articles.sqlite`` being
    linked, until the delta would pass :data:`DELTA_MAX_ROWS`; then
    everything is folded into a copy of ``articles.sqlite``.
    """
    old_delta, delta = old_dir / DELTA_FILE, new_dir / DELTA_FILE
    held = _delta_rows(old_delta) if old_delta.exists() else 0
    if held + len(retired) + len(articles) > DELTA_MAX_ROWS:
        table = new_dir / ARTICLES_FILE
        shutil.copyfile(old_dir / ARTICLES_FILE, table)
        if old_delta.exists():
            _fold(table, old_delta)
        retire_articles(table, retired)
        add_articles(table, first_row, articles)
        return
    os.link(old_dir / ARTICLES_FILE, new_dir / ARTICLES_FILE)
    if old_delta.exists():
        shutil.copyfile(old_delta, delta)
    else:
        create_article_table(delta)
        with _writer(delta) as db:
            db.execute("CREATE TABLE retired (row INTEGER PRIMARY KEY)")
    with _writer(delta) as db:
        db.executemany("INSERT INTO retired VALUES (?)", ((r,) for r in retired))
    add_articles(delta, first_row, articles)


def _delta_rows(delta: Path) -> int:
    """The rows, added and retired, that ``delta`` holds."""
    with contextlib.closing(sqlite3.connect(_uri(delta), uri=True)) as db:
        return sum(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("articles", "retired"))


def _fold(table: Path, delta: Path) -> None:
    """Move the rows of ``delta`` into ``table`` (a private copy) and apply its retirements."""
    with _writer(table) as db:
        # A plain path: this connection was not opened to read URIs. It only reads the old delta.
        db.execute("ATTACH DATABASE ? AS delta", (str(delta),))
        db.execute("INSERT INTO articles SELECT * FROM delta.articles")
        db.execute("UPDATE articles SET live = 0, body = '' WHERE row IN (SELECT row FROM delta.retired)")


def live_digests(folder: Path) -> dict[str, tuple[int, str]]:
    """doc_id -> (row, digest) of every live article of the index ``folder``: what an update diffs against."""
    db = _connect(folder)
    try:
        return {d: (r, g) for r, d, g in db.execute("SELECT row, doc_id, digest FROM every WHERE live")}
    finally:
        db.close()


class ArticleStore:
    """Read-only access to ``articles.sqlite``, safe to share between threads.

    One connection, opened immutable (the files are never written after the
    index swaps in: an update links or copies them), serialised by a lock;
    bodies are fetched on demand and the last few hundred kept.
    """

    def __init__(self, folder: Path) -> None:
        self._db = _connect(folder)
        self._lock = threading.Lock()
        self._cached_row = functools.lru_cache(maxsize=_CACHE_ARTICLES)(self._fetch_row)

    def columns(self) -> ArticleColumns:
        """Outlet, date and liveness of every row, in row order."""
        with self._lock:
            rows = self._db.execute("SELECT row, outlet, date, live FROM every ORDER BY row").fetchall()
        if any(row != i for i, (row, _, _, _) in enumerate(rows)):
            raise ValueError("article rows are not numbered 0..n-1")
        return ArticleColumns(
            outlet=np.array([o for _, o, _, _ in rows], dtype=object),
            date_key=np.array([date_key(d) for _, _, d, _ in rows], dtype=np.int64),
            live=np.array([bool(v) for _, _, _, v in rows], dtype=bool),
        )

    def article(self, row: int) -> Article:
        """The article stored at ``row`` (KeyError when there is none)."""
        return self._cached_row(int(row))

    def row_of(self, doc_id: str) -> int | None:
        """The live row of ``doc_id``, or None when no live article has that id."""
        with self._lock:
            found = self._db.execute("SELECT row FROM every WHERE doc_id = ? AND live", (doc_id,)).fetchone()
        return None if found is None else int(found[0])

    def live_ids(self) -> list[str]:
        """doc_ids of the live articles, in row order."""
        with self._lock:
            return [d for (d,) in self._db.execute("SELECT doc_id FROM every WHERE live ORDER BY row")]

    def close(self) -> None:
        self._db.close()

    def _fetch_row(self, row: int) -> Article:
        with self._lock:
            found = self._db.execute(f"SELECT {_COLUMNS} FROM every WHERE row = ?", (row,)).fetchone()
        if found is None:
            raise KeyError(row)
        return Article(*found)


class LiveArticles(Mapping[str, Article]):
    """The live articles by doc_id; a body is read only when its article is looked up."""

    def __init__(self, store: ArticleStore) -> None:
        self._store = store
        self._ids = store.live_ids()

    def __getitem__(self, doc_id: str) -> Article:
        row = self._store.row_of(doc_id) if isinstance(doc_id, str) else None
        if row is None:
            raise KeyError(doc_id)
        return self._store.article(row)

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self._store.row_of(doc_id) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def _uri(path: Path) -> str:
    # immutable=1: no locks and no journal lookups; true of an index file.
    return f"{Path(path).resolve().as_uri()}?mode=ro&immutable=1"


def _connect(folder: Path) -> sqlite3.Connection:
    """A read-only connection to ``folder``'s articles and delta, read through the view ``every``."""
    db = sqlite3.connect(_uri(folder / ARTICLES_FILE), uri=True, check_same_thread=False)
    try:
        if (folder / DELTA_FILE).exists():
            db.execute("ATTACH DATABASE ? AS delta", (_uri(folder / DELTA_FILE),))
            db.execute(_WITH_DELTA)
        else:
            db.execute(_ONE_TABLE)
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def _writer(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection that commits when the block ends without an error, and always closes.

    Written only inside a build's temporary folder, which a failure throws
    away whole, so no rollback journal is needed.
    """
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    try:
        yield db
        db.commit()
    finally:
        db.close()
