"""Incremental update: bring an index in line with a changed corpus in time proportional to the change.

The corpus is diffed against ``articles.sqlite`` by doc_id and digest
(content and metadata): a new doc_id is added, a changed digest is an edit
(the old version removed, the new one added under new ids), a doc_id no
longer in the corpus is removed. Only added and edited articles are split,
embedded and tagged, into one new segment. Removed rows are marked dead in
``articles.sqlite`` (their bodies dropped), deleted from tantivy, and skipped
by dense searches until the dead share of ``passages.faiss`` passes
:data:`COMPACT_SHARE`, when the FAISS index is rebuilt from the stored
passage vectors of live passages (no re-embedding).

The new index is a complete folder swapped in atomically like a build: its
unchanged files (old segments, tantivy segment files, and ``passages.faiss``
until :data:`FOLD_PASSAGES` passages wait outside it) are hard links to the
previous index's, which nothing writes in place; only the article table,
tantivy's new files, the new segment and the manifest are written, and only
they are hashed. A kill at any point leaves the previous index whole.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qa.embedding.encoder import Encoder
from qa.errors import IndexStoreError
from qa.index.articles import ARTICLES_FILE, DELTA_FILE, article_digest, live_digests, stage_articles
from qa.index.dense import EXACT_FACTORY, build_dense_index, choose_factory, needs_retype, save_dense_index
from qa.index.entities import EntityTagger
from qa.index.folder import locked, staged
from qa.index.lexical import LexicalDoc, update_lexical_index
from qa.index.segments import SEGMENTS_DIR, Numbering, WrittenSegment, segment_name, write_segment
from qa.index.store import (
    CORPUS_CHANGED,
    DENSE_FILE,
    LEXICAL_DIR,
    CorpusRecord,
    FileStamp,
    IndexData,
    IndexSpec,
    load_index,
    stale_reasons,
    write_manifest,
)
from qa.records import Article

# When dead passages pass this share of the FAISS index, an update rebuilds
# it from the live passages' stored vectors. Dead entries cost every dense
# search in proportion to their share (a flat scan reads them; a graph index
# walks them), and skipping them needs an over-fetch or an id selector; a
# rebuild costs a full index build (seconds for a flat index at 100k
# passages, minutes for HNSW at 1M). At 20% a search does at most 25% extra
# work, and a rebuild happens only after a fifth of the archive has been
# replaced, so its cost is spread over many updates.
COMPACT_SHARE = 0.2
# Passages an update may leave out of ``passages.faiss`` (every load adds them
# from their segments: qa.index.store.add_pending) before one rewrites it.
# Rewriting costs a write and a sha256 of the whole file (about 400 MB at 1M
# passages, over a second here); adding 2,000 vectors at load costs a copy
# for a flat index and, for an inverted file of 4096 cells, assigning each to
# its cell, about 3 GFLOP (tens of milliseconds on 2 cores). So a one-article
# update (10 passages) shares the file, and about 200 of them share one rewrite.
FOLD_PASSAGES = 2_000
# Files an update writes anew rather than sharing with the previous index
# (the article files are linked or copied by qa.index.articles.stage_articles;
# ``passages.faiss`` is rewritten when it folds pending passages in: unlinked first).
# tantivy replaces meta.json and .managed.json on commit; copies guarantee
# that nothing written to them can reach the previous index's inodes.
_REWRITTEN = (ARTICLES_FILE, DELTA_FILE)
_COPIED = (f"{LEXICAL_DIR}/meta.json", f"{LEXICAL_DIR}/.managed.json")


@dataclass(frozen=True)
class CorpusDiff:
    """How the corpus differs from the live articles of an index."""

    new: tuple[Article, ...]
    added: int
    edited: int
    removed: int
    retired_rows: tuple[int, ...]

    @property
    def empty(self) -> bool:
        return not self.new and not self.retired_rows


def diff_corpus(stored: Mapping[str, tuple[int, str]], articles: Sequence[Article]) -> CorpusDiff:
    """Compare ``articles`` with ``stored`` (doc_id -> (row, digest) of the live articles).

    Returns:
        The articles to index (added and edited, in corpus order), the counts,
        and the rows that leave (edited articles' old versions and removed ones).
    """
    new: list[Article] = []
    retired: list[int] = []
    added = edited = 0
    present = set()
    for article in articles:
        present.add(article.doc_id)
        known = stored.get(article.doc_id)
        if known is None:
            added += 1
            new.append(article)
        elif known[1] != article_digest(article):
            edited += 1
            new.append(article)
            retired.append(known[0])
    gone = [row for doc_id, (row, _) in stored.items() if doc_id not in present]
    return CorpusDiff(tuple(new), added, edited, len(gone), tuple(sorted(retired + gone)))


@dataclass(frozen=True)
class UpdateReport:
    """What an update changed and where its time went (seconds by step)."""

    added: int
    edited: int
    removed: int
    compacted: bool
    seconds: float
    timings: dict[str, float]
    files: dict[str, FileStamp] = field(repr=False)

    def summary(self) -> str:
        compacted = "; dense index compacted" if self.compacted else ""
        return (
            f"corpus changed: {self.added} added, {self.edited} edited, {self.removed} removed; "
            f"index updated in {self.seconds:.1f} s{compacted}"
        )


def update_index(
    index_dir: Path,
    articles: Sequence[Article],
    spec: IndexSpec,
    embedder: Encoder,
    progress: bool = True,
    note: Callable[[str], None] | None = None,
    corpus: CorpusRecord | None = None,
    tagger: EntityTagger | None = None,
) -> UpdateReport:
    """Update the index in ``index_dir`` to hold exactly ``articles``, atomically.

    Args:
        index_dir: an index built for ``spec`` other than its corpus.
        articles: the whole corpus as it is now.
        spec: the spec the updated index will have (its corpus fingerprint).
        embedder: embeds the added and edited articles.
        progress: progress bars while embedding.
        note: told when another process holds the lock.
        corpus: the corpus signature and problems to record.
        tagger: finds named entities (spaCy's, by default).

    Returns:
        The counts, timings and files written (for :func:`qa.index.store.load_index`).

    Raises:
        IndexStoreError: the index is damaged, or differs from ``spec`` in
            more than its corpus (it must be rebuilt).
        IndexWriteError: the updated index cannot be written (disk full, no
            permission, a read-only place, an unsafe lock); the index is left whole.
    """
    index_dir = Path(index_dir)
    with locked(index_dir, note):
        started = time.perf_counter()
        old = load_index(index_dir)
        reasons = stale_reasons(old.manifest, spec)
        if reasons not in ([], [CORPUS_CHANGED]):
            raise IndexStoreError(f"the index cannot be updated ({', '.join(reasons)})")
        marks = {"load": time.perf_counter()}
        diff = diff_corpus(live_digests(index_dir), articles)
        marks["diff"] = time.perf_counter()
        stored_corpus = old.manifest.get("corpus") or {}
        if diff.empty and not reasons and corpus is not None and stored_corpus == asdict(corpus):
            old.store.close()  # another process brought it up to date while this one waited
            return UpdateReport(0, 0, 0, False, marks["diff"] - started, {}, old.files)
        with staged(index_dir) as tmp:
            result = _write_update(index_dir, tmp, old, diff, spec, embedder, tagger, progress, marks, note)
            compacted, counts, segments, dense_fields = result
            header = {
                "spec": asdict(spec),
                "dimension": old.manifest["dimension"],
                **dense_fields,
                "entity_model": old.manifest["entity_model"],
                "reader": old.manifest.get("reader"),
                "corpus": asdict(corpus) if corpus else stored_corpus or None,
            }
            files = write_manifest(tmp, header, counts, segments, old.files)
            marks["checksum"] = time.perf_counter()
        old.store.close()
    ended = time.perf_counter()
    order = ["load", "diff", "embed", "write", "checksum"]
    timings, previous = {}, started
    for step in order:
        timings[step] = round(marks[step] - previous, 3)
        previous = marks[step]
    timings["swap"] = round(ended - previous, 3)
    return UpdateReport(diff.added, diff.edited, diff.removed, compacted, ended - started, timings, files)


def _write_update(
    index_dir: Path,
    tmp: Path,
    old: IndexData,
    diff: CorpusDiff,
    spec: IndexSpec,
    embedder: Encoder,
    tagger: EntityTagger | None,
    progress: bool,
    marks: dict[str, float],
    note: Callable[[str], None] | None,
) -> tuple[bool, dict[str, int], list[str], dict[str, Any]]:
    """Write the updated index into ``tmp``; returns (compacted, counts, segment names, dense fields).

    The dense fields are the manifest's ``dense_factory`` and ``dense_folded``.
    """
    segments = list(old.manifest["segments"])
    rows = len(old.columns.live)
    segment: WrittenSegment | None = None
    if diff.new:
        name = segment_name(int(segments[-1]) + 1 if segments else 0)
        segment = write_segment(
            tmp / SEGMENTS_DIR / name,
            diff.new,
            Numbering(rows, len(old.sentences), len(old.passages)),
            spec.sentences_per_passage,
            spec.passage_stride,
            embedder,
            tagger or EntityTagger(),
            progress,
            note,
        )
        segments.append(name)
    marks["embed"] = time.perf_counter()

    for name in old.files:
        if name not in _REWRITTEN:
            place = shutil.copyfile if name in _COPIED else os.link
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            place(index_dir / name, tmp / name)
    stage_articles(index_dir, tmp, rows, diff.retired_rows, diff.new)

    dead = np.flatnonzero(np.isin(old.passage_articles, diff.retired_rows) & old.live)
    live = old.live.copy()
    live[dead] = False
    new_ids = segment.passage_ids if segment else np.zeros(0, dtype=np.int64)
    live = np.concatenate([live, np.ones(len(new_ids), dtype=bool)])
    dense, compacted, dense_fields = _write_dense(tmp, old, segment, live, progress)
    docs: Sequence[LexicalDoc] = segment.lexical_docs if segment else ()
    update_lexical_index(tmp / LEXICAL_DIR, dead.tolist(), docs)
    marks["write"] = time.perf_counter()

    counts = {
        "articles": int(old.columns.live.sum()) - len(diff.retired_rows) + len(diff.new),
        "article_rows": rows + len(diff.new),
        "sentences": len(old.sentences) + (segment.sentences if segment else 0),
        "passages": len(live),
        "live_passages": int(live.sum()),
        "dense": int(dense.ntotal),
    }
    return compacted, counts, segments, dense_fields


def _write_dense(
    tmp: Path, old: IndexData, segment: WrittenSegment | None, live: np.ndarray, progress: bool
) -> tuple[faiss.Index, bool, dict[str, Any]]:
    """The dense index after the update, written to ``tmp`` only when due.

    ``tmp`` holds a link to the previous ``passages.faiss``; the new segment's
    passages are added in memory and left for loads to add again until
    :data:`FOLD_PASSAGES` wait, or a compaction or re-typing rebuilds the index.

    Returns:
        The index, whether it was rebuilt, and its manifest fields.
    """
    dense = old.dense
    if segment is not None:
        dense.add_with_ids(segment.passage_vectors, segment.passage_ids)
    compacted = dense.ntotal > 0 and (dense.ntotal - int(live.sum())) / dense.ntotal > COMPACT_SHARE
    # Grown past the exact-search size (or far enough that the cells no
    # longer fit): re-typed from the stored vectors, as a compaction is.
    factory = old.manifest.get("dense_factory", EXACT_FACTORY)
    if needs_retype(factory, int(live.sum())):
        compacted, factory = True, choose_factory(int(live.sum()))
    if compacted:
        kept = np.flatnonzero(live)
        old_kept = kept[kept < len(old.passages)]
        vectors = old.segments.passage_vectors[old_kept]
        if segment is not None:
            vectors = np.concatenate([vectors, segment.passage_vectors])
        dense = build_dense_index(vectors, factory, progress, ids=kept)
    folded = old.manifest.get("dense_folded", len(old.passages))
    if compacted or len(live) - folded > FOLD_PASSAGES:
        (tmp / DENSE_FILE).unlink()  # a link to the previous index's file, which must stay as it is
        save_dense_index(dense, tmp / DENSE_FILE)
        folded = len(live)
    return dense, compacted, {"dense_factory": factory, "dense_folded": folded}
