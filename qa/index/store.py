"""Build, save and load the on-disk index: plain files plus a JSON manifest.

Layout of an index folder (schema 5)::

    manifest.json          schema version, model, dimension, corpus fingerprint and
                           signature, splitting settings, counts, segments, size and
                           sha256 of every file, and its own sha256
    articles.sqlite        one row per article version: body, metadata, digest, live
                           flag (qa.index.articles); a row number is the article id
                           the arrays below refer to
    articles-delta.sqlite  where there is one: rows added and retired since articles.sqlite
                           was last written, read as one table with it
    segments/000000/       the rows a build or update added (qa.index.segments): sentences,
    segments/000001/...    passages, their vectors and named entities; global ids
                           continue from one segment to the next
    passages.faiss         FAISS IDMap index of passage vectors, ids = global passage ids;
                           the manifest's ``dense_folded`` says how many ids it has seen,
                           and passages past that are added from their segments at load
    bm25/                  tantivy index of passage text, outlet and date

Articles removed or edited since a passage was indexed are dead: their rows
stay (ids never change) but are marked in ``articles.sqlite``, deleted from
tantivy, and kept out of dense results until a compaction drops them from
``passages.faiss`` (qa.index.update). A build or update writes a complete new
folder and swaps it into place atomically (qa.index.folder). Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import faiss
import numpy as np

from qa.checksum import file_sha256
from qa.corpus.load import MAX_NAMED_PROBLEMS, CorpusLoad
from qa.embedding.encoder import Encoder
from qa.errors import IndexStoreError
from qa.index.articles import (
    ARTICLES_FILE,
    ArticleColumns,
    ArticleStore,
    LiveArticles,
    add_articles,
    create_article_table,
)
from qa.index.dense import build_dense_index, choose_factory, load_dense_index, save_dense_index
from qa.index.entities import EntityTagger, sentence_entities
from qa.index.folder import MANIFEST, lock_path, locked, staged
from qa.index.lexical import LexicalIndex, build_lexical_index
from qa.index.segments import (
    SEGMENTS_DIR,
    Numbering,
    SegmentArrays,
    load_segments,
    segment_name,
    write_segment,
)
from qa.records import Article

__all__ = ["MANIFEST", "lock_path"]

# Bump when the layout or the meaning of any file changes: older indexes are
# then rebuilt instead of misread.
# 3: the manifest holds a sha256 of every file. 4: entities.npy.
# 5: articles.sqlite, segments/, an IDMap FAISS index, dead passages.
SCHEMA_VERSION = 5
LEXICAL_DIR = "bm25"
DENSE_FILE = "passages.faiss"


@dataclass(frozen=True)
class IndexSpec:
    """What an index must have been built from to be usable as is."""

    model: str
    corpus_fingerprint: str
    sentences_per_passage: int
    passage_stride: int
    schema_version: int = SCHEMA_VERSION


@dataclass(frozen=True)
class CorpusRecord:
    """What the manifest remembers of the corpus read, so a start can skip reading it.

    ``signature`` is :func:`qa.corpus.folder.corpus_signature` (file names, sizes,
    times); while it matches, the stored ``problems`` are reported instead of
    loading the corpus again. They name at most MAX_NAMED_PROBLEMS, then a line
    counts the rest; ``problem_count`` and ``skipped`` count them all.
    """

    signature: str
    problems: tuple[str, ...] = ()
    skipped: int = 0
    problem_count: int = 0

    @classmethod
    def of(cls, signature: str, load: CorpusLoad) -> CorpusRecord:
        """The record of a corpus just read."""
        return cls(signature, load.problems, load.skipped, load.problem_count)

    @classmethod
    def from_manifest(cls, stored: Mapping[str, Any] | None) -> CorpusRecord | None:
        """The record a manifest holds, or None where it cannot vouch for the corpus.

        None for no record, and for one written before problems were bounded
        that names more: the corpus is then read again, and the record rewritten small.
        """
        if not stored:
            return None
        problems = tuple(stored["problems"])
        if "problem_count" not in stored and len(problems) > MAX_NAMED_PROBLEMS:
            return None
        count = stored.get("problem_count", len(problems))
        return cls(stored["signature"], problems, stored["skipped"], count)


@dataclass(frozen=True)
class FileStamp:
    """A file this process has just written or checked: its inode, size, mtime and sha256."""

    inode: int
    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: Path, sha256: str) -> FileStamp:
        st = path.stat()
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, sha256)


@dataclass(frozen=True)
class SentenceRow:
    """Where one indexed sentence is: its article's row in the store and its offsets in the body."""

    article: int
    start: int
    end: int


@dataclass(frozen=True)
class PassageRow:
    """Where one indexed passage is, and its sentences: global ids first_sentence <= id < last_sentence."""

    article: int
    start: int
    end: int
    first_sentence: int
    last_sentence: int


@dataclass
class IndexData:
    """A loaded index: everything a query needs, already computed.

    Article bodies stay in ``articles.sqlite`` and are read one at a time
    (:meth:`article`); vectors stay memory-mapped in the segments; the int
    arrays and per-article outlet/date columns are in memory.
    """

    manifest: dict[str, Any]
    store: ArticleStore
    columns: ArticleColumns
    segments: SegmentArrays
    live: np.ndarray
    dense: faiss.Index
    lexical: LexicalIndex
    files: dict[str, FileStamp] = field(default_factory=dict)

    @property
    def sentences(self) -> np.ndarray:
        """int64 rows (article row, start, end), one per global sentence id."""
        return self.segments.sentences

    @property
    def passages(self) -> np.ndarray:
        """int64 rows (article row, start, end, first_sentence, last_sentence), one per passage id."""
        return self.segments.passages

    @property
    def passage_articles(self) -> np.ndarray:
        """The article row of every passage, by passage id (for per-passage filters and masks)."""
        return self.segments.passages[:, 0]

    def sentence_row(self, sid: int) -> SentenceRow:
        """Where global sentence ``sid`` is."""
        article, start, end = (int(v) for v in self.segments.sentences[sid])
        return SentenceRow(article, start, end)

    def passage_row(self, pid: int) -> PassageRow:
        """Where passage ``pid`` is, and which sentences it holds."""
        return PassageRow(*(int(v) for v in self.segments.passages[pid]))

    def sentence_text(self, sid: int) -> str:
        """The text of global sentence ``sid``, sliced from its article body."""
        row = self.sentence_row(sid)
        return self.article(row.article).body[row.start : row.end]

    def sentence_before(self, sid: int) -> str:
        """The sentence before ``sid`` in the same article, or "" for an article's first."""
        if sid <= 0 or self.sentence_row(sid - 1).article != self.sentence_row(sid).article:
            return ""
        return self.sentence_text(sid - 1)

    def sentence_after(self, sid: int) -> str:
        """The sentence after ``sid`` in the same article, or "" for an article's last."""
        if (
            sid + 1 >= len(self.segments.sentences)
            or self.sentence_row(sid + 1).article != self.sentence_row(sid).article
        ):
            return ""
        return self.sentence_text(sid + 1)

    @property
    def entities(self) -> np.ndarray:
        return self.segments.entities

    def sentence_entities(self, sid: int) -> list[tuple[int, int, str]]:
        """The named entities of sentence ``sid`` as (start, end, label), offsets in the sentence."""
        return sentence_entities(self.segments.entities, sid)

    def article_sentences(self, sid: int) -> range:
        """The global ids of the sentences of ``sid``'s article, in order."""
        sentences = self.segments.sentences[:, 0]
        article = sentences[sid]
        first, end = sid, sid + 1
        while first > 0 and sentences[first - 1] == article:
            first -= 1
        while end < len(sentences) and sentences[end] == article:
            end += 1
        return range(first, end)

    @property
    def sentence_vectors(self) -> Any:
        """Unit sentence vectors by global sentence id (memory-mapped; int or int-array indexing)."""
        return self.segments.sentence_vectors

    @property
    def outlets(self) -> tuple[str, ...]:
        return self.columns.outlets

    @property
    def live_passages(self) -> int:
        """How many passages a query may return."""
        return int(self.live.sum())

    @property
    def dead_in_dense(self) -> int:
        """Dead passages still in the FAISS index, which dense searches must skip."""
        return int(self.dense.ntotal) - int(self.live.sum())

    def check_passage_setting(self, sentences_per_passage: int, passage_stride: int) -> None:
        """Raise ValueError unless this index was split with this passage size and stride."""
        spec = self.manifest["spec"]
        if (sentences_per_passage, passage_stride) != (spec["sentences_per_passage"], spec["passage_stride"]):
            raise ValueError("passage size and stride are fixed by the index; open another index")

    def article(self, row: int) -> Article:
        """The article at ``row`` (the first column of ``sentences`` and ``passages``)."""
        return self.store.article(row)

    def article_by_id(self, doc_id: str) -> Article | None:
        """The live article ``doc_id``, or None when the corpus no longer has it."""
        row = self.store.row_of(doc_id)
        return None if row is None else self.store.article(row)

    def live_articles(self) -> LiveArticles:
        """The live articles by doc_id; bodies are read only when looked up."""
        return LiveArticles(self.store)


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    """The manifest of ``index_dir``, or None when there is no readable one."""
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("spec"), dict):
        return None
    return manifest


CORPUS_CHANGED = "the corpus changed"


def stale_reasons(manifest: dict[str, Any], spec: IndexSpec) -> list[str]:
    """Why an index with ``manifest`` cannot serve ``spec``; empty when it can.

    :data:`CORPUS_CHANGED` alone can be fixed by an update (qa.index.update); the
    others need a rebuild.
    """
    labels = {
        "schema_version": "the index format changed",
        "model": "the embedding model changed",
        "corpus_fingerprint": CORPUS_CHANGED,
        "sentences_per_passage": "the passage size changed",
        "passage_stride": "the passage stride changed",
    }
    built = manifest.get("spec", {})
    return [label for key, label in labels.items() if built.get(key) != getattr(spec, key)]


def load_index(index_dir: Path) -> IndexData:
    """Load and check an index folder, without hashing its files.

    A start must not cost a read of every byte (seconds at 1M passages), so
    the checks here are the cheap ones: the manifest's own checksum, every
    listed file present at its recorded size, each file readable, the counts.
    File checksums are computed when a build or update writes a file and
    checked in full by :func:`verify_index` (``qa verify``); damage that keeps
    a file's size is found there.

    Raises:
        IndexStoreError: a file is missing, truncated or inconsistent with the
            manifest, or cannot be read. The message says which.
    """
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if manifest is None:
        raise IndexStoreError(f"no readable {MANIFEST} in {index_dir}")
    if manifest.get("manifest_sha256") != _manifest_digest(manifest):
        raise IndexStoreError(f"{MANIFEST} does not match its own checksum")
    try:
        # Checked before any file is opened: a truncated tantivy or FAISS
        # file can crash its reader instead of raising.
        files = _check_files(index_dir, manifest["files"])
        counts = manifest["counts"]
        dimension = manifest["dimension"]
        store, columns = _named(ARTICLES_FILE, lambda: _open_articles(index_dir))
        segments = load_segments(index_dir, manifest["segments"], dimension)
        owners = segments.passages[:, 0]
        if len(owners) and not 0 <= int(owners.min()) <= int(owners.max()) < len(columns.live):
            raise IndexStoreError("passages.npy refers to articles that articles.sqlite does not hold")
        live = columns.live[owners]
        dense = _named(DENSE_FILE, lambda: load_dense_index(index_dir / DENSE_FILE))
        add_pending(dense, segments, manifest.get("dense_folded", len(segments.passages)))
        lexical = _named(LEXICAL_DIR, lambda: LexicalIndex(index_dir / LEXICAL_DIR))
        found = {
            "articles": int(columns.live.sum()),
            "article_rows": len(columns.live),
            "sentences": len(segments.sentences),
            "sentence_vectors": len(segments.sentence_vectors),
            "passages": len(segments.passages),
            "passage_vectors": len(segments.passage_vectors),
            "live_passages": int(live.sum()),
            "bm25": lexical.num_docs,
            "dense": int(dense.ntotal),
        }
        expected = {
            "articles": counts["articles"],
            "article_rows": counts["article_rows"],
            "sentences": counts["sentences"],
            "sentence_vectors": counts["sentences"],
            "passages": counts["passages"],
            "passage_vectors": counts["passages"],
            "live_passages": counts["live_passages"],
            "bm25": counts["live_passages"],
            "dense": counts["dense"],
        }
        wrong = [f"{k}: {found[k]} (expected {expected[k]})" for k in found if found[k] != expected[k]]
        if wrong:
            raise IndexStoreError("counts disagree with the manifest: " + "; ".join(wrong))
        if dense.d != dimension:
            raise IndexStoreError("vector dimension disagrees with the manifest")
        entities = segments.entities
        if len(entities) and not 0 <= int(entities[:, 0].max()) < len(segments.sentences):
            raise IndexStoreError("entities.npy does not fit the sentences")
    except IndexStoreError:
        raise
    except Exception as exc:  # a damaged file surfaces as many exception types
        raise IndexStoreError(f"index in {index_dir} is unreadable: {exc}") from exc
    return IndexData(manifest, store, columns, segments, live, dense, lexical, files)


def add_pending(dense: faiss.Index, segments: SegmentArrays, folded: int) -> None:
    """Add to ``dense`` the passages with ids from ``folded`` on, which its file does not hold.

    An update that adds a few passages leaves ``passages.faiss`` as it was
    (shared with the previous index, not rewritten and re-hashed whole) and
    records how many passage ids the file has seen; the rest are added from
    their segments' stored vectors here, as every load reads them anyway.
    """
    ids = np.arange(folded, len(segments.passages), dtype=np.int64)
    if len(ids):
        dense.add_with_ids(np.ascontiguousarray(segments.passage_vectors[ids], dtype=np.float32), ids)


def _check_files(index_dir: Path, listed: dict[str, list[Any]]) -> dict[str, FileStamp]:
    """Check every listed file is present at its recorded size; their stamps, for an update to reuse.

    A stamp carries the recorded digest: an update keeps it for a file it
    hard-links unchanged, and hashes only the files it writes.
    """
    stamps = {}
    for name, (size, digest) in listed.items():
        path = index_dir / name
        if not path.is_file():
            raise IndexStoreError(f"{name} is missing")
        stamp = FileStamp.of(path, digest)
        if stamp.size != size:
            raise IndexStoreError(f"{name} is {stamp.size} bytes, manifest says {size}")
        stamps[name] = stamp
    return stamps


T = TypeVar("T")


def _named(name: str, read: Callable[[], T]) -> T:
    """``read()``, with any failure reported as an IndexStoreError naming the file ``name``."""
    try:
        return read()
    except (KeyboardInterrupt, SystemExit):
        raise
    # A damaged file surfaces as many exception types; tantivy's Rust panics
    # arrive as pyo3's PanicException, which derives from BaseException.
    except BaseException as exc:
        raise IndexStoreError(f"{name} is unreadable: {exc}") from exc


def _open_articles(index_dir: Path) -> tuple[ArticleStore, ArticleColumns]:
    store = ArticleStore(index_dir)
    return store, store.columns()


@dataclass(frozen=True)
class FileProblem:
    """A file of an index that is missing or differs from what the manifest recorded."""

    name: str
    problem: str


def verify_index(index_dir: Path) -> list[FileProblem]:
    """Hash every file of ``index_dir`` against the manifest: what :func:`load_index` leaves out.

    Returns:
        Each file that is missing, of another size or another sha256 (the
        manifest itself when it is unreadable or fails its own checksum);
        empty for a whole index.
    """
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if manifest is None or not isinstance(manifest.get("files"), dict):
        return [FileProblem(MANIFEST, "missing or unreadable")]
    if manifest.get("manifest_sha256") != _manifest_digest(manifest):
        return [FileProblem(MANIFEST, "does not match its own checksum")]
    problems = []
    for name, (size, digest) in sorted(manifest["files"].items()):
        path = index_dir / name
        if not path.is_file():
            problems.append(FileProblem(name, "missing"))
        elif path.stat().st_size != size:
            problems.append(FileProblem(name, f"{path.stat().st_size} bytes, manifest says {size}"))
        elif file_sha256(path) != digest:
            problems.append(FileProblem(name, "does not match its sha256 in the manifest"))
    return problems


def build_index(
    index_dir: Path,
    articles: Sequence[Article],
    spec: IndexSpec,
    embedder: Encoder,
    progress: bool = True,
    force: bool = True,
    note: Callable[[str], None] | None = None,
    reader: dict[str, str] | None = None,
    corpus: CorpusRecord | None = None,
    tagger: EntityTagger | None = None,
) -> dict[str, FileStamp]:
    """Split, embed and index ``articles`` into ``index_dir``, atomically.

    Holds a lock (:func:`lock_path`) so two builds of one index never
    interleave: the second says whose lock it waits for, then, unless
    ``force``, finds the index the first one built current and keeps it.
    ``reader`` (id and sha256 of the reader the index is built to answer
    with) and ``corpus`` are recorded in the manifest; the index does not
    depend on them. ``tagger`` finds named entities (spaCy's, by default).

    Returns:
        The files written and their sha256, computed as they were written
        (empty when an index built by another process was kept).

    Raises:
        IndexStoreError: the folder given holds something other than an index.
        IndexWriteError: the index folder or its lock cannot be written.
    """
    index_dir = Path(index_dir)
    tagger = tagger or EntityTagger()
    with locked(index_dir, note):
        if not force and _is_current(index_dir, spec):
            return {}
        with staged(index_dir) as tmp:
            create_article_table(tmp / ARTICLES_FILE)
            add_articles(tmp / ARTICLES_FILE, 0, articles)
            name = segment_name(0)
            segment = write_segment(
                tmp / SEGMENTS_DIR / name,
                articles,
                Numbering(0, 0, 0),
                spec.sentences_per_passage,
                spec.passage_stride,
                embedder,
                tagger,
                progress,
                note,
            )
            dense = build_dense_index(segment.passage_vectors, progress=progress, ids=segment.passage_ids)
            save_dense_index(dense, tmp / DENSE_FILE)
            (tmp / LEXICAL_DIR).mkdir()
            build_lexical_index(tmp / LEXICAL_DIR, segment.lexical_docs)
            passages = len(segment.passage_ids)
            counts = {
                "articles": len(articles),
                "article_rows": len(articles),
                "sentences": segment.sentences,
                "passages": passages,
                "live_passages": passages,
                "dense": passages,
            }
            header = {
                "spec": asdict(spec),
                "dimension": int(segment.passage_vectors.shape[1]),
                "dense_factory": choose_factory(passages),
                "dense_folded": passages,
                "entity_model": tagger.version,
                "reader": reader,
                "corpus": asdict(corpus) if corpus else None,
            }
            return write_manifest(tmp, header, counts, [name], {})


def write_manifest(
    folder: Path,
    header: dict[str, Any],
    counts: dict[str, int],
    segments: list[str],
    unchanged: Mapping[str, FileStamp],
) -> dict[str, FileStamp]:
    """Write ``folder``'s manifest: ``header``, counts, segments and every file's size and sha256.

    A file in ``unchanged`` (hard-linked from the previous index: same inode,
    size and mtime) keeps the digest already checked; every other file is
    hashed. The manifest is written last: a folder without one is never a
    valid index.

    Returns:
        The stamp of every file listed.
    """
    stamps: dict[str, FileStamp] = {}
    for path in sorted(folder.rglob("*")):
        # tantivy's lock files are empty and come and go; they are not index content.
        if not path.is_file() or path.name.startswith(".tantivy-"):
            continue
        name = path.relative_to(folder).as_posix()
        known = unchanged.get(name)
        if known is not None and FileStamp.of(path, known.sha256) == known:
            stamps[name] = known
        else:
            stamps[name] = FileStamp.of(path, file_sha256(path))
    manifest = {
        **header,
        "counts": counts,
        "segments": segments,
        # Every file, tantivy's included: a damaged file is named on load instead of being misread.
        "files": {name: [s.size, s.sha256] for name, s in stamps.items()},
    }
    # A change inside the manifest (a size, a checksum) must name the manifest,
    # not the file whose entry it altered.
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return stamps


def _manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's content other than this digest itself."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def _is_current(index_dir: Path, spec: IndexSpec) -> bool:
    manifest = read_manifest(index_dir)
    if manifest is None or stale_reasons(manifest, spec):
        return False
    try:
        load_index(index_dir)
    except IndexStoreError:
        return False
    return True
