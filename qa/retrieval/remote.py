"""A thin replica's index: read from Milvus alone, each question's rows fetched as it needs them.

:class:`RemoteIndex` answers the calls answer choice and citation make of
:class:`qa.index.store.IndexData` (passage and sentence places, sentence text,
vectors and entities, articles, BM25 statistics) from the collections a sync
writes (qa.retrieval.milvus_answering), through the serving aliases. Opening
reads one manifest property, so start-up time does not grow with the archive;
a question costs a few queries: the found passages' places, then their
articles and sentences (three in all), and the document frequency of each
question term not asked before. What was fetched is kept, up to a bound:
rows are keyed by ids that never change, so nothing kept goes stale when a
sync moves the aliases to a newer build.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.errors import IndexStoreError
from qa.index.lexical import text_analyzer
from qa.index.store import PassageRow, SentenceRow
from qa.records import Article
from qa.retrieval.milvus import MilvusRetriever, connect, quote, serving_collection
from qa.retrieval.milvus_answering import ARTICLES, MANIFEST_PROPERTY, MAX_PARTS, QUERY_ROWS, SENTENCES, TERMS
from qa.retrieval.milvus_cluster import NO_OPTIONS, ClusterOptions, ensure_loaded
from qa.retrieval.retriever import Hits

if TYPE_CHECKING:
    from pymilvus import MilvusClient

# Articles kept (with their sentences and vectors: about 60 KB each at 40 sentences),
# passage places and term frequencies kept; the oldest go first.
KEPT_ARTICLES = 4096
KEPT_ROWS = 200_000
# Articles per fetch: a query's rows stay under QUERY_ROWS and its message small.
FETCH_ARTICLES = 100
TIMEOUT_S = 10.0


class _Kept(OrderedDict):
    """A dict that forgets its oldest entries past ``most``."""

    def __init__(self, most: int) -> None:
        super().__init__()
        self.most = most

    def keep(self, key: Any, value: Any) -> list[Any]:
        """Keep ``value``; the values forgotten to make room."""
        self[key] = value
        self.move_to_end(key)
        return [self.popitem(last=False)[1] for _ in range(len(self) - self.most)]


@dataclass(frozen=True)
class _HeldArticle:
    """One fetched article with its sentences: offsets, entities and unit vectors, in sentence order."""

    row: int
    article: Article
    first: int
    places: tuple[tuple[int, int], ...]
    entities: tuple[tuple[tuple[int, int, str], ...], ...]
    vectors: np.ndarray

    @property
    def sids(self) -> range:
        """The global ids of the article's sentences, in order."""
        return range(self.first, self.first + len(self.places))


class RemoteLexical:
    """The BM25 side of a question on a replica: the index's analyzer here, term statistics in Milvus."""

    def __init__(self, client: MilvusClient, collection: str, num_docs: int) -> None:
        self._client, self._collection, self.num_docs = client, collection, num_docs
        self._analyzer = text_analyzer()
        self._frequencies = _Kept(KEPT_ROWS)
        self._lock = threading.Lock()

    def terms(self, text: str) -> list[str]:
        """The index terms of ``text`` (what BM25 matches on)."""
        return list(self._analyzer.analyze(text))

    def doc_freq(self, term: str) -> int:
        """The passages holding ``term``, as the local BM25 index counted them when synced."""
        with self._lock:
            if term in self._frequencies:
                return int(self._frequencies[term])
        rows = _query(self._client, self._collection, f"term == {quote(term)}", ["df"])
        count = int(rows[0]["df"]) if rows else 0
        with self._lock:
            self._frequencies.keep(term, count)
        return count


class _Vectors:
    """Sentence vectors by global id, int or int-array indexing, like the local memory-mapped array."""

    def __init__(self, index: RemoteIndex) -> None:
        self._index = index

    def __getitem__(self, ids: int | np.integer | np.ndarray) -> np.ndarray:
        if np.ndim(ids) == 0:
            held = self._index.held_sentence(int(ids))
            return held.vectors[int(ids) - held.first]
        if not np.size(ids):
            return np.zeros((0, int(self._index.manifest["dimension"])), dtype=np.float32)
        return np.stack([self[int(i)] for i in np.asarray(ids).ravel()])


class RemoteArticles(Mapping[str, Article]):
    """The live articles of a replica by doc_id; each is fetched when looked up."""

    def __init__(self, index: RemoteIndex) -> None:
        self._index = index

    def __getitem__(self, doc_id: str) -> Article:
        article = self._index.article_by_id(doc_id) if isinstance(doc_id, str) else None
        if article is None:
            raise KeyError(doc_id)
        return article

    def __iter__(self) -> Iterator[str]:
        iterator = self._index.client.query_iterator(
            self._index.names[ARTICLES], batch_size=QUERY_ROWS, filter="part == 0", output_fields=["doc_id"]
        )
        try:
            while batch := iterator.next():
                yield from (str(row["doc_id"]) for row in batch)
        finally:
            iterator.close()

    def __len__(self) -> int:
        return int(self._index.manifest["counts"]["articles"])


class RemoteIndex:
    """The read side of an index held in Milvus (see the module docstring); safe to share between threads."""

    def __init__(self, client: MilvusClient, collection: str, manifest: dict[str, Any]) -> None:
        self.client = client
        self.manifest = manifest
        self.names = {kind: collection + kind for kind in (ARTICLES, SENTENCES, TERMS)}
        self._passages_collection = collection
        self.lexical = RemoteLexical(client, self.names[TERMS], int(manifest["lexical_docs"]))
        self.sentence_vectors = _Vectors(self)
        self._passages = _Kept(KEPT_ROWS)
        self._articles = _Kept(KEPT_ARTICLES)
        self._owners: dict[int, int] = {}  # sentence id -> article row, for the articles kept
        self._lock = threading.Lock()

    @property
    def outlets(self) -> tuple[str, ...]:
        return tuple(self.manifest["outlets"])

    @property
    def live_passages(self) -> int:
        return int(self.manifest["counts"]["live_passages"])

    def check_passage_setting(self, sentences_per_passage: int, passage_stride: int) -> None:
        """Raise ValueError unless the index was split with this passage size and stride."""
        spec = self.manifest["spec"]
        if (sentences_per_passage, passage_stride) != (spec["sentences_per_passage"], spec["passage_stride"]):
            raise ValueError("passage size and stride are fixed by the index; open another index")

    def prefetch(self, pids: Iterable[int]) -> None:
        """Fetch the places of passages ``pids``, then their articles and sentences, in a few queries."""
        pids = [int(p) for p in pids]
        with self._lock:
            missing = sorted(set(pids) - self._passages.keys())
        for start in range(0, len(missing), QUERY_ROWS):
            batch = ", ".join(str(p) for p in missing[start : start + QUERY_ROWS])
            fields = ["article", "start", "end", "first_sentence", "last_sentence"]
            rows = _query(self.client, self._passages_collection, f"passage_id in [{batch}]", fields)
            with self._lock:
                for row in rows:
                    self._passages.keep(int(row["passage_id"]), PassageRow(*(int(row[f]) for f in fields)))
        with self._lock:
            rows = {self._passages[p].article for p in pids if p in self._passages}
        self._fetch_articles(rows)

    def passage_row(self, pid: int) -> PassageRow:
        """Where passage ``pid`` is, and which sentences it holds."""
        row = self._kept(self._passages, pid, self.prefetch)
        if row is None:
            raise IndexStoreError(f"passage {pid} is not in Milvus collection {self._passages_collection!r}")
        return row

    def held_sentence(self, sid: int) -> _HeldArticle:
        """The fetched article holding sentence ``sid`` (fetched now if it is not yet)."""
        held = self._holding(sid)
        if held is None:
            rows = _query(self.client, self.names[SENTENCES], f"sid == {sid}", ["article"])
            if not rows:
                raise IndexStoreError(f"sentence {sid} is not in Milvus collection {self.names[SENTENCES]!r}")
            self._fetch_articles([int(rows[0]["article"])])
            held = self._holding(sid)
        if held is None:
            raise IndexStoreError(f"sentence {sid}'s article is not in Milvus")
        return held

    def sentence_row(self, sid: int) -> SentenceRow:
        held = self.held_sentence(sid)
        start, end = held.places[sid - held.first]
        return SentenceRow(held.row, start, end)

    def sentence_text(self, sid: int) -> str:
        held = self.held_sentence(sid)
        start, end = held.places[sid - held.first]
        return held.article.body[start:end]

    def sentence_before(self, sid: int) -> str:
        """The sentence before ``sid`` in the same article, or "" for an article's first."""
        return "" if sid == self.held_sentence(sid).first else self.sentence_text(sid - 1)

    def sentence_after(self, sid: int) -> str:
        """The sentence after ``sid`` in the same article, or "" for an article's last."""
        held = self.held_sentence(sid)
        return self.sentence_text(sid + 1) if sid + 1 in held.sids else ""

    def article_sentences(self, sid: int) -> range:
        return self.held_sentence(sid).sids

    def sentence_entities(self, sid: int) -> list[tuple[int, int, str]]:
        held = self.held_sentence(sid)
        return list(held.entities[sid - held.first])

    def article(self, row: int) -> Article:
        """The article at ``row`` (IndexStoreError when Milvus has none)."""
        held = self._kept(self._articles, row, self._fetch_articles)
        if held is None:
            raise IndexStoreError(f"article row {row} is not in Milvus collection {self.names[ARTICLES]!r}")
        return held.article

    def article_by_id(self, doc_id: str) -> Article | None:
        """The live article ``doc_id``, or None when the synced index has none."""
        found = f"doc_id == {quote(doc_id)} and part == 0"
        rows = _query(self.client, self.names[ARTICLES], found, ["article"])
        return self.article(int(rows[0]["article"])) if rows else None

    def live_articles(self) -> RemoteArticles:
        return RemoteArticles(self)

    def _kept(self, kept: _Kept, key: int, fetch: Callable[[list[int]], None]) -> Any:
        """``kept[key]``, fetched first if it is not kept; None when Milvus has no such row."""
        with self._lock:
            value = kept.get(key)
        if value is None:
            fetch([key])
            with self._lock:
                value = kept.get(key)
        return value

    def _by_keys(self, kind: str, key: str, keys: Sequence[int]) -> list[dict[str, Any]]:
        """The rows of collection ``kind`` with these primary keys, in queries of at most QUERY_ROWS."""
        fields = _ARTICLE_FIELDS if kind == ARTICLES else _SENTENCE_FIELDS
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), QUERY_ROWS):
            listed = ", ".join(str(k) for k in keys[start : start + QUERY_ROWS])
            found += _query(self.client, self.names[kind], f"{key} in [{listed}]", fields)
        return found

    def _holding(self, sid: int) -> _HeldArticle | None:
        with self._lock:
            row = self._owners.get(sid)
            return None if row is None else self._articles.get(row)

    def _fetch_articles(self, rows: Iterable[int]) -> None:
        with self._lock:
            missing = sorted({int(r) for r in rows} - self._articles.keys())
        for start in range(0, len(missing), FETCH_ARTICLES):
            # Every read is by primary key: a first part's key is the article row times MAX_PARTS.
            batch = missing[start : start + FETCH_ARTICLES]
            heads = self._by_keys(ARTICLES, "key", [r * MAX_PARTS for r in batch])
            more = [int(h["article"]) * MAX_PARTS + p for h in heads for p in range(1, int(h["parts"]))]
            parts = heads + self._by_keys(ARTICLES, "key", more)
            spans = [(int(h["first_sentence"]), int(h["sentence_count"])) for h in heads]
            sids = [sid for first, count in spans for sid in range(first, first + count)]
            sentences = self._by_keys(SENTENCES, "sid", sids)
            for row, held in _assemble(parts, sentences).items():
                with self._lock:
                    for gone in self._articles.keep(row, held):
                        for sid in gone.sids:
                            self._owners.pop(sid, None)
                    self._owners.update((sid, row) for sid in held.sids)


_ARTICLE_FIELDS = ["article", "part", "parts", "body", "doc_id", "outlet", "date", "title", "url"]
_ARTICLE_FIELDS += ["first_sentence", "sentence_count"]
_SENTENCE_FIELDS = ["sid", "article", "start", "end", "vector", "entities"]


def _assemble(
    parts: Sequence[dict[str, Any]], sentences: Sequence[dict[str, Any]]
) -> dict[int, _HeldArticle]:
    """Articles from their body parts and sentence rows, by article row."""
    by_article: dict[int, list[dict[str, Any]]] = {}
    for row in sorted(sentences, key=lambda r: int(r["sid"])):
        by_article.setdefault(int(row["article"]), []).append(row)
    bodies: dict[int, list[dict[str, Any]]] = {}
    for part in parts:
        bodies.setdefault(int(part["article"]), []).append(part)
    held: dict[int, _HeldArticle] = {}
    for row, pieces in bodies.items():
        pieces.sort(key=lambda p: int(p["part"]))
        head = pieces[0]
        article = Article(
            doc_id=head["doc_id"],
            body="".join(p["body"] for p in pieces),
            outlet=head["outlet"],
            date=head["date"],
            title=head["title"],
            url=head["url"],
        )
        own = by_article.get(row, [])
        vectors = np.array([r["vector"] for r in own], dtype=np.float32).reshape(len(own), -1)
        held[row] = _HeldArticle(
            row,
            article,
            int(head["first_sentence"]),
            tuple((int(r["start"]), int(r["end"])) for r in own),
            tuple(tuple((int(s), int(e), str(label)) for s, e, label in r["entities"]) for r in own),
            vectors,
        )
    return held


def _query(client: MilvusClient, collection: str, expression: str, fields: list[str]) -> list[dict[str, Any]]:
    from pymilvus import MilvusException

    try:
        return list(
            client.query(
                collection,
                filter=expression,
                output_fields=fields,
                limit=QUERY_ROWS,
                timeout=TIMEOUT_S,
                consistency_level="Bounded",
            )
        )
    except MilvusException as exc:
        raise IndexStoreError(f"Milvus query of {collection!r} failed: {exc}") from exc


class ReplicaFilter:
    """The engine's passage filter on a replica: Milvus filters in each search and holds live rows only."""

    def __init__(self, index: RemoteIndex) -> None:
        self._index = index

    def allowed(self, _filters: object) -> None:
        """Unknown here (Milvus applies the filter): no "no article matches" notice on a replica."""
        return None

    def live_only(self, hits: Hits) -> Hits:
        """``hits`` as they are (a synced collection holds live passages only), their rows fetched."""
        self._index.prefetch(pid for pid, _ in hits)
        return hits


def newer_remote(index: RemoteIndex) -> RemoteIndex | None:
    """The index the serving aliases now point at, when a sync has published another build since.

    Raises:
        IndexStoreError: Milvus cannot be read, or the new build is of another model
            (a restart opens it with that model's encoder).
    """
    from pymilvus import MilvusException

    try:
        properties = index.client.describe_collection(index.names[ARTICLES], timeout=TIMEOUT_S)["properties"]
    except MilvusException as exc:
        raise IndexStoreError(f"Milvus collection {index.names[ARTICLES]!r} cannot be read: {exc}") from exc
    manifest = json.loads(properties.get(MANIFEST_PROPERTY) or "{}")
    if not manifest or manifest["manifest_sha256"] == index.manifest["manifest_sha256"]:
        return None
    for key in ("model", "schema_version"):
        if manifest["spec"].get(key) != index.manifest["spec"].get(key):
            raise IndexStoreError(f"the new build has another {key}; restart the replica to use it")
    return RemoteIndex(index.client, index.names[ARTICLES].removesuffix(ARTICLES), manifest)


def open_remote(
    uri: str,
    collection: str,
    note: Callable[[str], None] | None = None,
    options: ClusterOptions = NO_OPTIONS,
) -> tuple[RemoteIndex, MilvusRetriever]:
    """The index and retriever of a replica of ``collection`` at ``uri``: one manifest read, no file.

    Raises:
        IndexStoreError: no synced collection of that name with what answering needs (the
            message names the command that loads it), or Milvus cannot be reached.
    """
    from pymilvus import MilvusException

    client = connect(uri, options)
    command = f"qa index --backend milvus --uri {uri} --corpus CORPUS --index INDEX"
    try:
        serving = serving_collection(client, collection)
        if serving is None or not client.has_collection(serving + ARTICLES, timeout=TIMEOUT_S):
            raise IndexStoreError(
                f"Milvus at {uri} holds no collection {collection!r} a replica can answer from "
                f"(passages, articles, sentences and terms); load it with: {command}"
            )
        properties = client.describe_collection(serving + ARTICLES, timeout=TIMEOUT_S).get("properties", {})
        for kind in ("", ARTICLES, SENTENCES, TERMS):
            ensure_loaded(client, serving + kind, options)
    except MilvusException as exc:
        raise IndexStoreError(f"Milvus at {uri} failed on collection {collection!r}: {exc}") from exc
    stored = properties.get(MANIFEST_PROPERTY)
    if not stored:
        raise IndexStoreError(f"Milvus collection {collection!r} at {uri} is mid-sync; finish: {command}")
    manifest = json.loads(stored)
    if note is not None:
        counts = manifest["counts"]
        note(
            f"replica of Milvus collection {collection!r} at {uri}: {counts['articles']:,} articles, "
            f"{counts['live_passages']:,} passages, model {manifest['spec']['model']}"
        )
    return RemoteIndex(client, collection, manifest), MilvusRetriever(client, collection)
