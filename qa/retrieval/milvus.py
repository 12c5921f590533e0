"""Milvus as the retrieval backend: one collection row per live passage.

The local index stays the source of truth (articles, sentences, sentence
vectors and entities still pick and cite the answer); Milvus answers the two
calls of :class:`qa.retrieval.retriever.Retriever`: a dense run over the passage
vectors and a BM25 run through Milvus' own full-text search, both filtered by
outlet and date inside Milvus. The same code talks to milvus-lite (a ``.db``
file, for tests and a laptop) and to a Milvus server or cluster (a URL).

BM25 analysis: milvus-lite's analyzer has no stemmer and no English stop list
(only a ``\\w+`` lower-casing tokenizer), and :meth:`Retriever.lexical` is
handed index terms, not the question. So each row stores its passage already
analyzed by the tantivy analyzer (``qa.index.lexical``), joined by spaces, and the
query is those terms too: both backends match exactly the same terms, on lite
and on a cluster alike. A term's weight is sent as repetition (BM25 in Milvus
multiplies by the query's term count), which carries the 0.6 history weight
exactly as 3 copies against 5 (:data:`WEIGHT_STEPS`).

Sync: the name a user gives (``newsqa_passages``) is an alias over two
collections, ``<name>_blue`` and ``<name>_green``. ``sync_collection`` brings
the one the alias does not point at up to the index, diffing it by passage id
and a per-row digest (vector, terms, outlet, date): rows of dead passages are
deleted, missing or changed ones written, so a sync writes what changed since
the build that collection last held. It then flushes it, marks it with the
manifest's checksum and points the alias at it. Serving processes search the
alias, so none reads a half-synced collection, and any number of replicas
share it; a query-time open refuses a collection marked with another build.
A collection from before the alias scheme is renamed ``<name>_blue`` first.

Every call has a timeout, and every read says its consistency: Strong where a
sync reads back its own writes (row counts and digests), Bounded for searches
of a flushed, published collection.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from qa.errors import IndexStoreError, InputError
from qa.index.lexical import date_key
from qa.index.store import IndexData, PassageRow
from qa.retrieval.milvus_answering import KINDS, has_answering, publish, sync_answering
from qa.retrieval.milvus_cluster import NO_OPTIONS, ClusterOptions, ensure_loaded
from qa.retrieval.retriever import Hits, QueryFilters
from qa.settings import DEFAULT_COLLECTION, MILVUS_TOKEN_ENV

if TYPE_CHECKING:
    from pymilvus import MilvusClient

# Collection property holding the manifest checksum of the index build the
# rows were synced from; empty while a sync is under way.
SYNC_PROPERTY = "newsqa.manifest_sha256"
# Rows per insert or delete call: well under Milvus' 64 MB gRPC message limit
# at 384-dimension vectors (about 2 KB a row with its terms).
BATCH_ROWS = 1000
# Repetitions of a query term per unit of weight: weight 1.0 is sent 5 times,
# the history weight 0.6 exactly 3 times; other weights round to 0.2 steps.
WEIGHT_STEPS = 5
# Milvus' BM25 defaults are k1=1.2, b=0.75 and tantivy's are the same; set
# both explicitly because milvus-lite defaults to k1=1.5.
BM25_PARAMS = {"bm25_k1": 1.2, "bm25_b": 0.75}
# VARCHAR limits (bytes). Terms longer than this are cut at a term boundary
# (a run-on "sentence" of a malformed file); an outlet never comes near it.
_TERMS_BYTES = 65_535
_OUTLET_BYTES = 4_096
_SERVER_URI = re.compile(r"^https?://[^\s/:]+:\d{1,5}/?$")
# Leaves room for the "_green_sentences" of the collections behind the aliases (255 characters in all).
_COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,238}$")
# The two collections behind a serving alias: a sync writes the one not being served.
SIDES = ("_blue", "_green")
# The passage row fields (qa.index.store.PassageRow) each collection row carries.
PASSAGE_PLACE = ("article", "start", "end", "first_sentence", "last_sentence")
# The dense index by collection size: exact FLAT, equal to the local FAISS Flat, up to
# FLAT_MAX_ROWS live passages; HNSW above, searched with ef = max(HNSW_EF, k). On milvus-lite
# (benchmarks/bench_milvus.py, "index_types") FLAT stayed faster than HNSW up to 50k (52.8 ms
# against 114.8 ms p50), so the line sits at the largest size measured (docs/scaling.md).
FLAT_MAX_ROWS = 50_000
HNSW_PARAMS = {"M": 16, "efConstruction": 200}
HNSW_EF = 128
# Seconds before a Milvus call gives up: a search answers a user; a sync call moves a batch.
SEARCH_TIMEOUT_S = 10.0
SYNC_TIMEOUT_S = 120.0
# Characters escaped inside a double-quoted filter string: the quote and the
# backslash themselves, and line breaks, which a filter parser rejects raw.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True)
class SyncReport:
    """What a sync changed: rows written and deleted, and rows in the collection after it."""

    written: int
    deleted: int
    rows: int

    @property
    def changed(self) -> bool:
        return bool(self.written or self.deleted)


def check_target(
    uri: str, collection: str = DEFAULT_COLLECTION, options: ClusterOptions = NO_OPTIONS
) -> None:
    """Refuse a URI or collection name Milvus cannot take, before any work is done.

    Raises:
        InputError: ``uri`` is neither a ``.db`` path nor an ``http(s)://host:port``
            URL, or ``collection`` is not a Milvus collection name.
    """
    if not uri.endswith(".db") and not _SERVER_URI.match(uri):
        raise InputError(
            f"--uri must be a milvus-lite file ending in .db (e.g. index/milvus.db) or a Milvus "
            f"server URL http(s)://host:port (e.g. http://localhost:19530), got {uri!r}"
        )
    if not _COLLECTION_NAME.match(collection):
        raise InputError(
            "--collection must start with a letter or underscore and hold only letters, digits "
            f"and underscores (at most 239), got {collection!r}"
        )
    options.check(uri)


def connect(uri: str, options: ClusterOptions = NO_OPTIONS) -> MilvusClient:
    """A client for ``uri``: a path ending in ``.db`` runs milvus-lite, a URL talks to a server.

    Raises:
        InputError: ``uri`` is neither (see :func:`check_target`), or pymilvus is not installed.
        IndexStoreError: the server or the file cannot be opened.
    """
    check_target(uri, options=options)
    try:
        from pymilvus import MilvusClient, MilvusException
    except ImportError:
        raise InputError("--backend milvus needs pymilvus and milvus-lite: pip install '.[scale]'") from None
    try:
        if uri.endswith(".db"):
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            return MilvusClient(uri)
        return MilvusClient(uri=uri, **options.client_options(os.environ.get(MILVUS_TOKEN_ENV, "")))
    except (MilvusException, OSError) as exc:
        raise IndexStoreError(f"cannot open Milvus at {uri}: {exc}") from exc


def quote(value: str) -> str:
    """``value`` as a double-quoted Milvus filter string that cannot end early."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def filter_expression(filters: QueryFilters) -> str:
    """The Milvus boolean expression for ``filters``; empty when none is set.

    Undated passages (date 0) fall outside any date range, as in the local backend.
    """
    clauses = []
    if filters.outlets:
        clauses.append(f"outlet in [{', '.join(quote(o) for o in filters.outlets)}]")
    if filters.since or filters.until:
        clauses.append("date > 0")
    if filters.since:
        clauses.append(f"date >= {date_key(filters.since)}")
    if filters.until:
        clauses.append(f"date <= {date_key(filters.until)}")
    return " and ".join(clauses)


def query_text(terms: Sequence[tuple[str, float]]) -> str:
    """Weighted index terms as BM25 query text: each term repeated in proportion to its weight.

    A term given twice keeps its larger weight, as the local BM25 query does.
    """
    weights: dict[str, float] = {}
    for term, weight in terms:
        weights[term] = max(weights.get(term, 0.0), weight)
    # Half steps round up (Python's round() would round 2.5 to 2).
    copies = {t: max(1, math.floor(w * WEIGHT_STEPS + 0.5)) for t, w in weights.items() if w > 0}
    return " ".join(" ".join([t] * n) for t, n in copies.items())


def live_passage_ids(data: IndexData) -> np.ndarray:
    """Ids of the passages a query may return: those of articles still in the corpus."""
    return np.flatnonzero(data.live).astype(np.int64)


def passage_vectors(data: IndexData, ids: np.ndarray) -> np.ndarray:
    """The unit vectors of passages ``ids``, as embedded (the index's stored float32 copies).

    Not read back from FAISS: an approximate index keeps only 8-bit codes.
    """
    return np.asarray(data.segments.passage_vectors[ids.astype(np.int64)], dtype=np.float32)


class MilvusRetriever:
    """Dense and BM25 runs from a synced Milvus collection (the :class:`Retriever` protocol)."""

    def __init__(self, client: MilvusClient, collection: str) -> None:
        self._client = client
        self._collection = collection

    def dense(self, vector: np.ndarray, k: int, filters: QueryFilters) -> Hits:
        return self._search([np.asarray(vector, dtype=np.float32).tolist()], "vector", k, filters)

    def lexical(self, terms: Sequence[tuple[str, float]], k: int, filters: QueryFilters) -> Hits:
        text = query_text(terms)
        return self._search([text], "sparse", k, filters) if text else []

    def _search(self, data: list[Any], field: str, k: int, filters: QueryFilters) -> Hits:
        if k <= 0:
            return []
        from pymilvus import MilvusException

        # ef matters only to HNSW (a collection past FLAT_MAX_ROWS); FLAT ignores it.
        params = {"params": {"ef": max(HNSW_EF, k)}} if field == "vector" else None
        try:
            hits = self._client.search(
                self._collection,
                data=data,
                anns_field=field,
                limit=k,
                filter=filter_expression(filters),
                output_fields=[],
                search_params=params,
                timeout=SEARCH_TIMEOUT_S,
                consistency_level="Bounded",
            )[0]
        except MilvusException as exc:
            raise IndexStoreError(f"Milvus search in collection {self._collection!r} failed: {exc}") from exc
        # milvus-lite reports BM25 as a negative distance and a server as a
        # positive score; BM25 is never negative, so the magnitude is the score
        # on both. Inner products (the dense run) keep their sign.
        if field == "sparse":
            return [(int(h.id), abs(float(h.distance))) for h in hits]
        return [(int(h.id), float(h.distance)) for h in hits]


def open_retriever(
    uri: str,
    data: IndexData,
    collection: str = DEFAULT_COLLECTION,
    sync: bool = False,
    progress: bool = True,
    note: Callable[[str], None] | None = None,
    options: ClusterOptions = NO_OPTIONS,
) -> MilvusRetriever:
    """A retriever on ``collection`` at ``uri``, synced from ``data`` first when ``sync``.

    ``note`` is told what a sync changed.

    Raises:
        IndexStoreError: the collection is missing or holds another build of
            the index (the message says to run ``qa index --backend milvus``),
            or Milvus cannot be reached.
    """
    client = connect(uri, options)
    from pymilvus import MilvusException

    try:
        if sync:
            report = sync_collection(client, data, collection, progress, options=options)
            if note is not None:
                note(
                    f"Milvus collection {collection!r} at {uri}: {report.rows} passages"
                    + (
                        f" ({report.written} written, {report.deleted} deleted)"
                        if report.changed
                        else " (already this index build; nothing reloaded)"
                    )
                )
        else:
            _check_synced(client, data, collection, uri)
    except MilvusException as exc:
        raise IndexStoreError(f"Milvus at {uri} failed on collection {collection!r}: {exc}") from exc
    return MilvusRetriever(client, collection)


def dense_index_type(rows: int) -> str:
    """The Milvus index for a collection of ``rows`` passage vectors (see FLAT_MAX_ROWS)."""
    return "FLAT" if rows <= FLAT_MAX_ROWS else "HNSW"


def sync_collection(
    client: MilvusClient,
    data: IndexData,
    collection: str,
    progress: bool = True,
    index_type: str | None = None,
    options: ClusterOptions = NO_OPTIONS,
) -> SyncReport:
    """Make the alias ``collection`` serve exactly the live passages of ``data`` (see the module docstring).

    The collection being served is left as it is: when it already holds this
    build nothing is written; otherwise the other one is brought up to date
    and the alias switched to it once it is complete. ``index_type`` forces the
    dense index ("FLAT", "HNSW"); by default :func:`dense_index_type` chooses it. ``options``
    give a collection made here its shards and the published one its replicas.
    """
    serving = serving_collection(client, collection)
    if serving is None and client.has_collection(collection, timeout=SYNC_TIMEOUT_S):
        # Synced before aliases: a real collection under the serving name becomes the blue side,
        # which the steps below then find current (no reload) and publish under the alias.
        for kind in ("", *KINDS):
            old, new = collection + kind, collection + SIDES[0] + kind
            if client.has_collection(old, timeout=SYNC_TIMEOUT_S):
                client.rename_collection(old, new, timeout=SYNC_TIMEOUT_S)
    live = live_passage_ids(data)
    build = data.manifest["manifest_sha256"]
    wanted = index_type or dense_index_type(len(live))
    current = serving and _build_of(client, serving) == build and _count(client, serving) == len(live)
    if current and _index_type(client, serving) == wanted and has_answering(client, serving, build):
        publish(client, serving, collection)
        return SyncReport(0, 0, len(live))
    standby = next(collection + side for side in SIDES if collection + side != serving)
    report = _bring_up_to_date(client, data, standby, progress, wanted, options)
    if serving is None:
        client.create_alias(standby, collection, timeout=SYNC_TIMEOUT_S)
    else:
        client.alter_alias(standby, collection, timeout=SYNC_TIMEOUT_S)
    publish(client, standby, collection)
    return report


def serving_collection(client: MilvusClient, collection: str) -> str | None:
    """The collection the alias ``collection`` points at, or None when there is no such alias."""
    for side in SIDES:
        name = collection + side
        exists = client.has_collection(name, timeout=SYNC_TIMEOUT_S)
        if (
            exists
            and collection in client.list_aliases(collection_name=name, timeout=SYNC_TIMEOUT_S)["aliases"]
        ):
            return name
    return None


def _bring_up_to_date(
    client: MilvusClient,
    data: IndexData,
    collection: str,
    progress: bool,
    index_type: str = "FLAT",
    options: ClusterOptions = NO_OPTIONS,
) -> SyncReport:
    """Diff ``collection`` with the live passages of ``data``, write what differs, mark it with the build.

    A collection whose vector size or dense index type is not the wanted one is made again.
    """
    live = live_passage_ids(data)
    build = data.manifest["manifest_sha256"]
    dimension = int(data.manifest["dimension"])
    if client.has_collection(collection, timeout=SYNC_TIMEOUT_S) and (
        _dimension(client, collection) != dimension
        or _index_type(client, collection) != index_type
        or not _has_field(client, collection, "first_sentence")
    ):
        client.drop_collection(collection, timeout=SYNC_TIMEOUT_S)
    if not client.has_collection(collection, timeout=SYNC_TIMEOUT_S):
        create_passage_collection(client, collection, dimension, index_type, options)
    ensure_loaded(client, collection, options)
    if (
        _build_of(client, collection) == build
        and _count(client, collection) == len(live)
        and has_answering(client, collection, build)
    ):
        return SyncReport(0, 0, len(live))

    _mark(client, collection, "")
    stored = _stored_digests(client, collection) if _count(client, collection) else {}
    dead = np.setdiff1d(np.fromiter(stored, dtype=np.int64, count=len(stored)), live)
    written = 0
    batches = range(0, len(live), BATCH_ROWS)
    for start in tqdm(batches, desc="Loading passages into Milvus", unit="batch", disable=not progress):
        batch = _rows(data, live[start : start + BATCH_ROWS])
        rows = [r for r in batch if stored.get(r["passage_id"]) != r["digest"]]
        if rows:
            client.upsert(collection, rows, timeout=SYNC_TIMEOUT_S)
        written += len(rows)
    for start in range(0, len(dead), BATCH_ROWS):
        client.delete(collection, ids=dead[start : start + BATCH_ROWS].tolist(), timeout=SYNC_TIMEOUT_S)
    # Sealed segments get their BM25 index and whole-segment statistics; rows
    # left in milvus-lite's memory table are scored with statistics of the
    # filtered rows alone.
    client.flush(collection, timeout=SYNC_TIMEOUT_S)
    sync_answering(client, data, collection, progress, options)
    for kind in ("", *KINDS):
        ensure_loaded(client, collection + kind, options, publish=True)
    _mark(client, collection, build)
    return SyncReport(written, len(dead), _count(client, collection))


def _check_synced(client: MilvusClient, data: IndexData, collection: str, uri: str) -> None:
    command = f"qa index --backend milvus --uri {uri}" + (
        f" --collection {collection}" if collection != DEFAULT_COLLECTION else ""
    )
    serving = serving_collection(client, collection)
    if serving is None and client.has_collection(collection, timeout=SYNC_TIMEOUT_S):
        serving = collection  # synced before aliases; the next sync adopts it
    if serving is None:
        raise IndexStoreError(f"Milvus at {uri} has no collection {collection!r}; load it with: {command}")
    ensure_loaded(client, serving, NO_OPTIONS)
    live = len(live_passage_ids(data))
    rows = _count(client, serving)
    if _build_of(client, serving) != data.manifest["manifest_sha256"] or rows != live:
        raise IndexStoreError(
            f"Milvus collection {collection!r} at {uri} does not hold this index build "
            f"({rows} rows for {live} live passages, or loaded from another build); "
            f"bring it up to date with: {command}"
        )


def create_passage_collection(
    client: MilvusClient, collection: str, dimension: int, index_type: str, options: ClusterOptions
) -> None:
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, description="newsqa passages")
    schema.add_field("passage_id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    # Already analyzed by the tantivy analyzer: the standard tokenizer only
    # splits the terms apart again (see the module docstring).
    schema.add_field(
        "terms",
        DataType.VARCHAR,
        max_length=_TERMS_BYTES,
        enable_analyzer=True,
        analyzer_params={"tokenizer": "standard"},
    )
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("outlet", DataType.VARCHAR, max_length=_OUTLET_BYTES)
    schema.add_field("date", DataType.INT64)
    schema.add_field("digest", DataType.INT64)
    # Where the passage is, for a replica without the index folder (qa.retrieval.remote).
    for name in PASSAGE_PLACE:
        schema.add_field(name, DataType.INT64)
    schema.add_function(
        Function(
            name="terms_bm25",
            function_type=FunctionType.BM25,
            input_field_names=["terms"],
            output_field_names=["sparse"],
        )
    )
    indexes = client.prepare_index_params()
    # FLAT: exact inner product, the same figures as the local FAISS Flat index; HNSW above FLAT_MAX_ROWS.
    params = HNSW_PARAMS if index_type == "HNSW" else {}
    indexes.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=params)
    indexes.add_index(
        field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS
    )
    client.create_collection(
        collection, schema=schema, index_params=indexes, timeout=SYNC_TIMEOUT_S, **options.creation()
    )


def _rows(data: IndexData, ids: np.ndarray) -> Iterator[dict[str, Any]]:
    """Collection rows for passages ``ids``, each with the digest that tells a change."""
    vectors = passage_vectors(data, ids)
    for pid, vector in zip(ids.tolist(), vectors, strict=True):
        row = data.passage_row(pid)
        article = data.article(row.article)
        terms = data.lexical.terms(article.body[row.start : row.end])
        yield passage_record(pid, vector, terms, article.outlet, article.date, row)


def passage_record(
    pid: int, vector: np.ndarray, terms: Sequence[str], outlet: str, date: str, row: PassageRow
) -> dict[str, Any]:
    """One passages-collection row, with the digest a sync compares to tell a change."""
    text = _fit(" ".join(terms), _TERMS_BYTES)
    day = date_key(date)
    digest = hashlib.blake2b(np.asarray(vector, dtype=np.float32).tobytes(), digest_size=8)
    digest.update(f"\0{text}\0{outlet}\0{day}".encode())
    place = (row.article, row.start, row.end, row.first_sentence, row.last_sentence)
    return dict(zip(PASSAGE_PLACE, place, strict=True)) | {
        "passage_id": pid,
        "vector": vector,
        "terms": text,
        "outlet": outlet,
        "date": day,
        "digest": int.from_bytes(digest.digest(), "big", signed=True),
    }


def _fit(terms: str, limit: int) -> str:
    """``terms`` cut at a term boundary to at most ``limit`` UTF-8 bytes."""
    encoded = terms.encode()
    if len(encoded) <= limit:
        return terms
    return encoded[: limit + 1].decode(errors="ignore").rsplit(" ", 1)[0]


def _stored_digests(client: MilvusClient, collection: str) -> dict[int, int]:
    iterator = client.query_iterator(
        collection,
        batch_size=BATCH_ROWS * 10,
        filter="passage_id >= 0",
        output_fields=["digest"],
        timeout=SYNC_TIMEOUT_S,
        consistency_level="Strong",
    )
    stored: dict[int, int] = {}
    try:
        while batch := iterator.next():
            stored.update((int(row["passage_id"]), int(row["digest"])) for row in batch)
    finally:
        iterator.close()
    return stored


def _has_field(client: MilvusClient, collection: str, name: str) -> bool:
    fields = client.describe_collection(collection, timeout=SYNC_TIMEOUT_S)["fields"]
    return any(f["name"] == name for f in fields)


def _dimension(client: MilvusClient, collection: str) -> int | None:
    for field in client.describe_collection(collection, timeout=SYNC_TIMEOUT_S)["fields"]:
        if field["name"] == "vector":
            return int(field["params"]["dim"])
    return None


def _index_type(client: MilvusClient, collection: str) -> str:
    return str(client.describe_index(collection, "vector", timeout=SYNC_TIMEOUT_S).get("index_type", ""))


def _build_of(client: MilvusClient, collection: str) -> str:
    properties = client.describe_collection(collection, timeout=SYNC_TIMEOUT_S).get("properties", {})
    return str(properties.get(SYNC_PROPERTY, ""))


def _mark(client: MilvusClient, collection: str, build: str) -> None:
    client.alter_collection_properties(collection, properties={SYNC_PROPERTY: build}, timeout=SYNC_TIMEOUT_S)


def _count(client: MilvusClient, collection: str) -> int:
    # count(*) sees deletes at once; collection statistics lag until compaction. Strong: a
    # sync reads back its own writes, which Bounded consistency may not show yet.
    rows = client.query(
        collection, filter="", output_fields=["count(*)"], timeout=SYNC_TIMEOUT_S, consistency_level="Strong"
    )
    return int(rows[0]["count(*)"]) if rows else 0
