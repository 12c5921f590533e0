"""Load the Parquet shards of ``qa build-shards`` into Milvus, for thin replicas to answer from.

The shards (qa.index.stream_build) hold every article with its sentences,
passages, vectors and entities; this streams them, a batch of articles at a
time, into the four collections a sync writes (qa.retrieval.milvus and
qa.retrieval.milvus_answering) on the side the serving alias does not point
at, then moves the aliases: a replica sees the whole build or none of it.
Nothing is held whole but the vocabulary's document frequencies (a term and
a count each), which BM25 statistics need over the whole archive.

Streamed inserts, not Milvus' bulk import: bulk import reads files from the
object storage a Milvus cluster runs on, which milvus-lite has not, so it
could not be measured here; streamed inserts work on both.

No local index folder is written: an archive built this way is served by
Milvus alone (``--backend milvus`` without ``--index``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from qa.errors import InputError
from qa.index.lexical import text_analyzer
from qa.index.shard_rows import sentence_id
from qa.index.store import SCHEMA_VERSION, PassageRow
from qa.records import Article
from qa.retrieval.milvus import (
    BATCH_ROWS,
    SIDES,
    SYNC_PROPERTY,
    SYNC_TIMEOUT_S,
    check_target,
    connect,
    create_passage_collection,
    dense_index_type,
    passage_record,
    serving_collection,
)
from qa.retrieval.milvus_answering import (
    ARTICLES,
    KINDS,
    MANIFEST_PROPERTY,
    SENTENCES,
    TERMS,
    article_records,
    create_answering,
    publish,
    sentence_record,
    write_frequencies,
)
from qa.retrieval.milvus_cluster import NO_OPTIONS, ClusterOptions, ensure_loaded

if TYPE_CHECKING:
    from pymilvus import MilvusClient

# Articles read from Parquet at a time: a few MB of rows and vectors.
READ_ARTICLES = 64


@dataclass(frozen=True)
class ShardLoadReport:
    """What a load wrote."""

    shards: int
    articles: int
    sentences: int
    passages: int
    terms: int
    seconds: float


def load_shards(
    out: Path,
    uri: str,
    collection: str,
    options: ClusterOptions = NO_OPTIONS,
    progress: bool = True,
    note: Callable[[str], None] | None = None,
) -> ShardLoadReport:
    """Write the done shards of the build in ``out`` to ``collection`` at ``uri`` and publish them.

    Raises:
        InputError: ``uri``, ``collection`` or ``options`` Milvus cannot take; ``out`` is not a
            shard build, or has no finished shard.
    """
    check_target(uri, collection, options)
    started = time.perf_counter()
    header, shards = _finished(out)
    client = connect(uri, options)
    serving = serving_collection(client, collection)
    standby = next(collection + side for side in SIDES if collection + side != serving)
    passages = sum(int(s["passages"]) for s in shards)
    dimension = int(header["dimension"])
    for kind in ("", *KINDS):
        if client.has_collection(standby + kind, timeout=SYNC_TIMEOUT_S):
            client.drop_collection(standby + kind, timeout=SYNC_TIMEOUT_S)
    create_passage_collection(client, standby, dimension, dense_index_type(passages), options)
    create_answering(client, standby, dimension, options)
    writer = _Writer(client, standby)
    folders = [out / "shards" / f"{int(shard['shard']):06d}" for shard in shards]
    files = [path for folder in folders for path in sorted(folder.glob("*.parquet"))]
    for path in tqdm(files, desc="Loading shards into Milvus", unit="file", disable=not progress):
        for article in _articles(path):
            writer.add(article)
    writer.flush()
    write_frequencies(client, standby + TERMS, sorted(writer.frequencies.items()))
    build = hashlib.sha256(json.dumps([header, shards], sort_keys=True).encode()).hexdigest()
    manifest = _manifest(header, writer, build)
    for kind in ("", *KINDS):
        client.flush(standby + kind, timeout=SYNC_TIMEOUT_S)
        ensure_loaded(client, standby + kind, options, publish=True)
    client.alter_collection_properties(
        standby + ARTICLES, properties={MANIFEST_PROPERTY: json.dumps(manifest)}, timeout=SYNC_TIMEOUT_S
    )
    client.alter_collection_properties(standby, properties={SYNC_PROPERTY: build}, timeout=SYNC_TIMEOUT_S)
    if serving is None:
        client.create_alias(standby, collection, timeout=SYNC_TIMEOUT_S)
    else:
        client.alter_alias(standby, collection, timeout=SYNC_TIMEOUT_S)
    publish(client, standby, collection)
    counts = (writer.articles, writer.sentences, writer.passages, len(writer.frequencies))
    report = ShardLoadReport(len(shards), *counts, time.perf_counter() - started)
    if note is not None:
        note(f"Milvus collection {collection!r} at {uri}: {report.passages:,} passages from the shards")
    return report


def _finished(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The build's manifest and its done shards' markers, in shard order."""
    try:
        header = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{out} is not a qa build-shards output (no readable manifest.json): {exc}") from exc
    shards = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((out / "done").glob("*.json"))]
    if not shards:
        raise InputError(f"{out} has no finished shard yet; run qa build-shards to the end first")
    return header, sorted(shards, key=lambda s: int(s["shard"]))


def _articles(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_ARTICLES):
        yield from batch.to_pylist()


class _Writer:
    """Collects the rows of articles as they stream by and inserts them in batches."""

    def __init__(self, client: MilvusClient, side: str) -> None:
        self._client, self._side = client, side
        self._analyzer = text_analyzer()
        self._pending: dict[str, list[dict[str, Any]]] = {"": [], ARTICLES: [], SENTENCES: []}
        self.frequencies: Counter[str] = Counter()
        self.outlets: set[str] = set()
        self.articles = self.sentences = self.passages = 0

    def add(self, row: dict[str, Any]) -> None:
        article = Article(row["doc_id"], row["body"], row["outlet"], row["date"], row["title"], row["url"])
        number, sentences = int(row["article"]), row["sentences"]
        head = sentence_id(number, 0) if sentences else -1
        self._pending[ARTICLES] += article_records(number, article, head, len(sentences))
        for i, (sentence, vector) in enumerate(zip(sentences, row["sentence_vectors"], strict=True)):
            entities = json.loads(sentence["entities"]) if sentence["entities"] else []
            sid = sentence_id(number, i)
            record = sentence_record(sid, number, sentence["start"], sentence["end"], vector, entities)
            self._pending[SENTENCES].append(record)
        for passage, vector in zip(row["passages"], row["passage_vectors"], strict=True):
            bounds = (passage["start"], passage["end"], passage["first_sentence"], passage["last_sentence"])
            place = PassageRow(number, *bounds)
            terms = list(self._analyzer.analyze(article.body[place.start : place.end]))
            self.frequencies.update(set(terms))
            record = passage_record(passage["passage_id"], vector, terms, article.outlet, article.date, place)
            self._pending[""].append(record)
        self.outlets.add(article.outlet)
        self.articles += 1
        self.sentences += len(sentences)
        self.passages += len(row["passages"])
        if max(len(rows) for rows in self._pending.values()) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        for kind, rows in self._pending.items():
            if rows:
                self._client.insert(self._side + kind, rows, timeout=SYNC_TIMEOUT_S)
            rows.clear()


def _manifest(header: dict[str, Any], writer: _Writer, build: str) -> dict[str, Any]:
    """The manifest a replica opens with, as a sync writes it for an index folder."""
    spec = {
        "model": header["model"],
        "corpus_fingerprint": build,
        "sentences_per_passage": header["sentences_per_passage"],
        "passage_stride": header["passage_stride"],
        "schema_version": SCHEMA_VERSION,
    }
    counts = {
        "articles": writer.articles,
        "article_rows": writer.articles,
        "sentences": writer.sentences,
        "passages": writer.passages,
        "live_passages": writer.passages,
    }
    return {
        "spec": spec,
        "dimension": header["dimension"],
        "entity_model": header["entity_model"],
        "reader": None,
        "source": "qa build-shards",
        "counts": counts,
        "outlets": sorted(writer.outlets),
        "lexical_docs": writer.passages,
        "manifest_sha256": build,
    }
