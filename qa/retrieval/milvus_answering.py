"""What a thin replica answers from, kept in Milvus beside the passages (qa.retrieval.milvus).

A replica started with only ``--backend milvus --uri URI`` has no index folder
and no corpus: everything answer choice and citation read is in three more
collections, on the same blue/green side as the passages and published under
aliases named like theirs:

    <name>_articles   one row per part of a live article body (BODY_PART_CHARS a part):
                      doc_id, outlet, date, title and url, the article's first sentence
                      id and sentence count
    <name>_sentences  one row per sentence of a live article: its article, offsets in
                      the body, unit vector and named entities
    <name>_terms      each index term's document frequency, as the local BM25 index counts it

Rows are keyed by the local index's ids, which never change (an edit makes a new
article row), so a sync writes the rows of articles new since the side's last
build, deletes those of articles gone, and rewrites the frequencies of their
terms alone. The manifest a replica needs (model, reader, counts, outlets,
build) is a property of the articles collection. Milvus wants a vector field in
every collection: the articles and terms rows carry a two-number zero vector
that is never searched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from qa.index.store import IndexData
from qa.records import Article
from qa.retrieval.milvus_cluster import NO_OPTIONS, ClusterOptions, ensure_loaded

if TYPE_CHECKING:
    from pymilvus import MilvusClient

ARTICLES, SENTENCES, TERMS = "_articles", "_sentences", "_terms"
KINDS = (ARTICLES, SENTENCES, TERMS)
# Collection property of the articles collection: the manifest a replica opens with.
MANIFEST_PROPERTY = "newsqa.manifest"
# At most 4 UTF-8 bytes a character: a part stays under VARCHAR's 65,535 bytes.
BODY_PART_CHARS = 16_000
# Part keys are article * MAX_PARTS + part: bodies up to 16,000 x 4,096 = 65.5M characters.
MAX_PARTS = 4096
_TEXT_BYTES = 65_535
_TERM_BYTES = 256
_PLACEHOLDER = [0.0, 0.0]
# Articles per batch of writes: their sentences stay well under a 64 MB message.
ARTICLE_BATCH = 200
# Rows a query may return at most (Milvus' limit is 16,384).
QUERY_ROWS = 16_000
TIMEOUT_S = 120.0


def remote_manifest(data: IndexData) -> dict[str, Any]:
    """What a replica needs of the index manifest: no file list, plus outlets and BM25's document count."""
    kept = {k: v for k, v in data.manifest.items() if k not in ("files", "segments", "corpus")}
    return kept | {"outlets": list(data.outlets), "lexical_docs": data.lexical.num_docs}


def has_answering(client: MilvusClient, side: str, build: str) -> bool:
    """Whether ``side`` has its answering collections, marked with ``build``."""
    name = side + ARTICLES
    if not all(client.has_collection(side + kind, timeout=TIMEOUT_S) for kind in KINDS):
        return False
    properties = client.describe_collection(name, timeout=TIMEOUT_S).get("properties", {})
    stored = properties.get(MANIFEST_PROPERTY)
    return bool(stored) and json.loads(stored).get("manifest_sha256") == build


def sync_answering(
    client: MilvusClient,
    data: IndexData,
    side: str,
    progress: bool = True,
    options: ClusterOptions = NO_OPTIONS,
) -> int:
    """Bring the answering collections of ``side`` up to ``data``; the number of articles written."""
    dimension = int(data.manifest["dimension"])
    create_answering(client, side, dimension, options)
    live = np.flatnonzero(data.columns.live).astype(np.int64)
    stored = _stored_articles(client, side + ARTICLES)
    new, gone = np.setdiff1d(live, stored), np.setdiff1d(stored, live)
    for start in range(0, len(gone), ARTICLE_BATCH):
        rows = ", ".join(str(r) for r in gone[start : start + ARTICLE_BATCH].tolist())
        for kind in (ARTICLES, SENTENCES):
            client.delete(side + kind, filter=f"article in [{rows}]", timeout=TIMEOUT_S)
    order = np.argsort(data.sentences[:, 0], kind="stable")
    owners = data.sentences[order, 0]  # article rows of the sentences, sorted once for every batch
    # Terms of every article written or deleted: their document frequencies change.
    terms = {t for row in gone.tolist() for t in data.lexical.terms(data.article(row).body)}
    batches = range(0, len(new), ARTICLE_BATCH)
    for start in tqdm(batches, desc="Loading articles into Milvus", unit="batch", disable=not progress):
        batch = new[start : start + ARTICLE_BATCH]
        lo = np.searchsorted(owners, batch, side="left")
        hi = np.searchsorted(owners, batch, side="right")
        sids = [order[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
        articles = [data.article(row) for row in batch.tolist()]
        records = [
            record
            for row, article, ids in zip(batch.tolist(), articles, sids, strict=True)
            for record in article_records(row, article, int(ids[0]) if len(ids) else -1, len(ids))
        ]
        client.insert(side + ARTICLES, records, timeout=TIMEOUT_S)
        terms.update(t for article in articles for t in data.lexical.terms(article.body))
        rows = list(_sentence_rows(data, np.concatenate(sids) if sids else np.zeros(0, np.int64)))
        if rows:
            client.insert(side + SENTENCES, rows, timeout=TIMEOUT_S)
    counted = sorted(t for t in terms if len(t.encode()) <= _TERM_BYTES)
    write_frequencies(client, side + TERMS, [(t, data.lexical.doc_freq(t)) for t in counted])
    for kind in KINDS:
        client.flush(side + kind, timeout=TIMEOUT_S)
    properties = {MANIFEST_PROPERTY: json.dumps(remote_manifest(data))}
    client.alter_collection_properties(side + ARTICLES, properties=properties, timeout=TIMEOUT_S)
    return len(new)


def publish(client: MilvusClient, side: str, collection: str) -> None:
    """Point the aliases ``<collection>_articles`` (and the others) at ``side``'s collections."""
    existing = set(client.list_aliases(timeout=TIMEOUT_S)["aliases"])
    for kind in KINDS:
        if collection + kind in existing:
            client.alter_alias(side + kind, collection + kind, timeout=TIMEOUT_S)
        else:
            client.create_alias(side + kind, collection + kind, timeout=TIMEOUT_S)


def article_records(
    row: int, article: Article, first_sentence: int, sentence_count: int
) -> list[dict[str, Any]]:
    """The articles-collection rows of one article: its body in parts, its metadata on each."""
    parts = range(0, max(len(article.body), 1), BODY_PART_CHARS)
    if len(parts) > MAX_PARTS:
        raise ValueError(f"article {article.doc_id!r} is longer than Milvus rows can hold")
    return [
        {
            "key": row * MAX_PARTS + part,
            "article": row,
            "part": part,
            "parts": len(parts),
            "body": article.body[begin : begin + BODY_PART_CHARS],
            "doc_id": _fit(article.doc_id),
            "outlet": _fit(article.outlet),
            "date": article.date,
            "title": _fit(article.title),
            "url": _fit(article.url),
            "first_sentence": first_sentence,
            "sentence_count": sentence_count,
            "placeholder": _PLACEHOLDER,
        }
        for part, begin in enumerate(parts)
    ]


def _sentence_rows(data: IndexData, sids: np.ndarray) -> Iterator[dict[str, Any]]:
    vectors = np.asarray(data.sentence_vectors[sids], dtype=np.float32)
    for sid, vector in zip(sids.tolist(), vectors, strict=True):
        row = data.sentence_row(sid)
        yield sentence_record(sid, row.article, row.start, row.end, vector, data.sentence_entities(sid))


def sentence_record(
    sid: int, article: int, start: int, end: int, vector: Any, entities: Sequence[Sequence[Any]]
) -> dict[str, Any]:
    """One sentences-collection row; entities as (start, end, label) within the sentence."""
    entity_rows = [[int(a), int(b), str(label)] for a, b, label in entities]
    place = {"sid": sid, "article": article, "start": start, "end": end}
    return place | {"vector": vector, "entities": entity_rows}


def write_frequencies(client: MilvusClient, collection: str, frequencies: Sequence[tuple[str, int]]) -> None:
    """Set each term's document frequency; a term of frequency 0 is deleted."""
    for start in range(0, len(frequencies), QUERY_ROWS):
        batch = frequencies[start : start + QUERY_ROWS]
        kept = [{"term": t, "df": n, "placeholder": _PLACEHOLDER} for t, n in batch if n > 0]
        dropped = [t for t, n in batch if n == 0]
        if kept:
            client.upsert(collection, kept, timeout=TIMEOUT_S)
        if dropped:
            client.delete(collection, ids=dropped, timeout=TIMEOUT_S)


def _stored_articles(client: MilvusClient, collection: str) -> np.ndarray:
    iterator = client.query_iterator(
        collection,
        batch_size=QUERY_ROWS,
        filter="part == 0",
        output_fields=["article"],
        timeout=TIMEOUT_S,
        consistency_level="Strong",
    )
    stored: list[int] = []
    try:
        while batch := iterator.next():
            stored.extend(int(row["article"]) for row in batch)
    finally:
        iterator.close()
    return np.array(sorted(stored), dtype=np.int64)


def _fit(text: str) -> str:
    encoded = text.encode()
    return text if len(encoded) <= _TEXT_BYTES else encoded[:_TEXT_BYTES].decode(errors="ignore")


def _layout_differs(client: MilvusClient, side: str, dimension: int) -> bool:
    """Whether ``side``'s collections were made for another vector size, or by an earlier layout."""
    if not client.has_collection(side + SENTENCES, timeout=TIMEOUT_S):
        return False
    fields = client.describe_collection(side + SENTENCES, timeout=TIMEOUT_S)["fields"]
    if not any(f["name"] == "vector" and int(f["params"]["dim"]) == dimension for f in fields):
        return True
    if not client.has_collection(side + ARTICLES, timeout=TIMEOUT_S):
        return False
    names = {f["name"] for f in client.describe_collection(side + ARTICLES, timeout=TIMEOUT_S)["fields"]}
    return "parts" not in names


def create_answering(client: MilvusClient, side: str, dimension: int, options: ClusterOptions) -> None:
    """Make whichever answering collections ``side`` lacks (or holds at another vector size)."""
    from pymilvus import DataType, MilvusClient

    if _layout_differs(client, side, dimension):
        for kind in KINDS:
            client.drop_collection(side + kind, timeout=TIMEOUT_S)
    layouts: dict[str, list[tuple[str, Any, dict[str, Any]]]] = {
        ARTICLES: [
            ("key", DataType.INT64, {"is_primary": True}),
            ("article", DataType.INT64, {}),
            ("part", DataType.INT64, {}),
            ("parts", DataType.INT64, {}),
            ("body", DataType.VARCHAR, {"max_length": _TEXT_BYTES}),
            ("doc_id", DataType.VARCHAR, {"max_length": _TEXT_BYTES}),
            ("outlet", DataType.VARCHAR, {"max_length": _TEXT_BYTES}),
            ("date", DataType.VARCHAR, {"max_length": 32}),
            ("title", DataType.VARCHAR, {"max_length": _TEXT_BYTES}),
            ("url", DataType.VARCHAR, {"max_length": _TEXT_BYTES}),
            ("first_sentence", DataType.INT64, {}),
            ("sentence_count", DataType.INT64, {}),
            ("placeholder", DataType.FLOAT_VECTOR, {"dim": len(_PLACEHOLDER)}),
        ],
        SENTENCES: [
            ("sid", DataType.INT64, {"is_primary": True}),
            ("article", DataType.INT64, {}),
            ("start", DataType.INT64, {}),
            ("end", DataType.INT64, {}),
            ("vector", DataType.FLOAT_VECTOR, {"dim": dimension}),
            ("entities", DataType.JSON, {}),
        ],
        TERMS: [
            ("term", DataType.VARCHAR, {"is_primary": True, "max_length": _TERM_BYTES}),
            ("df", DataType.INT64, {}),
            ("placeholder", DataType.FLOAT_VECTOR, {"dim": len(_PLACEHOLDER)}),
        ],
    }
    for kind, fields in layouts.items():
        name = side + kind
        if client.has_collection(name, timeout=TIMEOUT_S):
            ensure_loaded(client, name, options)
            continue
        schema = MilvusClient.create_schema(auto_id=False, description=f"newsqa {kind[1:]}")
        for field_name, kind_of, extra in fields:
            schema.add_field(field_name, kind_of, **extra)
        indexes = client.prepare_index_params()
        vector, metric = ("vector", "IP") if kind == SENTENCES else ("placeholder", "L2")
        indexes.add_index(field_name=vector, index_type="FLAT", metric_type=metric)
        if kind != TERMS:
            indexes.add_index(field_name="article", index_type="INVERTED")
        client.create_collection(
            name, schema=schema, index_params=indexes, timeout=TIMEOUT_S, **options.creation()
        )
        ensure_loaded(client, name, options)
