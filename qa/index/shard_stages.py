"""The stages of a streaming build that run on Ray workers, each over a batch of articles as an Arrow table.

read (a staged shard file) -> split -> tag (spaCy, one model per actor) ->
embed (one model per actor) -> write (Parquet files of the shard, on the
worker). Only the write stage's small summary (counts per shard) goes back
to the driver. The row layout is ``qa.index.stream_build``'s. Imports
pyarrow, which comes with Ray, so only a job imports this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from qa.embedding.embedder import Embedder, use_one_thread_per_question
from qa.embedding.encoder import Encoder
from qa.embedding.stand_in import StandInEncoder
from qa.index.entities import LABELS, EntityTagger
from qa.index.shard_rows import MAX_SHARD_ROWS, TooManySentences, split_article
from qa.records import Article

ARTICLE_FIELDS = ("doc_id", "body", "outlet", "date", "title", "url")
SENTENCE = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("entities", pa.string())])
PASSAGE = pa.struct(
    [
        ("passage_id", pa.int64()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("first_sentence", pa.int64()),
        ("last_sentence", pa.int64()),
    ]
)
VECTORS = pa.list_(pa.list_(pa.float32()))
OUTPUT_COLUMNS = (
    "article",
    *ARTICLE_FIELDS,
    "sentences",
    "sentence_vectors",
    "passages",
    "passage_vectors",
)
SUMMARY = pa.schema(
    [
        ("shard", pa.int64()),
        ("articles", pa.int64()),
        ("sentences", pa.int64()),
        ("passages", pa.int64()),
        ("refused", pa.list_(pa.string())),
    ]
)


def shard_folder(out: Path, shard: int) -> Path:
    """Where the Parquet files of input shard ``shard`` go (zero-padded, so folders sort in order)."""
    return out / "shards" / f"{shard:06d}"


def read_staged(item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The articles of one staged shard file (JSON Lines the driver wrote), a row each."""
    with Path(item["path"]).open(encoding="utf-8") as lines:
        for line in lines:
            yield {"shard": item["shard"], **json.loads(line)}


def split_batch(batch: pa.Table, sentences_per_passage: int, passage_stride: int) -> pa.Table:
    """Add each article's sentences and passages (qa.index.shard_rows); ``refused`` says why one has none."""
    sentences: list[list[dict[str, Any]]] = []
    passages: list[list[dict[str, Any]]] = []
    refused: list[str] = []
    for row in batch.select(["article", *ARTICLE_FIELDS]).to_pylist():
        article = Article(**{key: row[key] for key in ARTICLE_FIELDS})
        try:
            split = split_article(row["article"], article, sentences_per_passage, passage_stride)
        except TooManySentences as exc:
            sentences.append([])
            passages.append([])
            refused.append(str(exc))
            continue
        sentences.append([{"start": s.start, "end": s.end, "entities": None} for s in split.sentences])
        passages.append(
            [
                {
                    "passage_id": pid,
                    "start": p.start,
                    "end": p.end,
                    "first_sentence": p.first_sentence,
                    "last_sentence": p.last_sentence,
                }
                for pid, p in zip(split.passage_ids, split.passages, strict=True)
            ]
        )
        refused.append("")
    return (
        batch.append_column("sentences", pa.array(sentences, pa.list_(SENTENCE)))
        .append_column("passages", pa.array(passages, pa.list_(PASSAGE)))
        .append_column("refused", pa.array(refused, pa.string()))
    )


class TagBatch:
    """One worker's spaCy pipeline, loaded once when Ray starts the actor; fills each sentence's entities."""

    def __init__(self) -> None:
        self._tagger = EntityTagger()
        self._tagger.nlp  # noqa: B018 - load now, so a missing model fails before any batch

    def __call__(self, batch: pa.Table) -> pa.Table:
        bodies = batch.column("body").to_pylist()
        sentences = batch.column("sentences").to_pylist()
        texts = span_texts(bodies, sentences)
        found: list[list[list[Any]]] = [[] for _ in texts]
        for index, start, end, code in self._tagger.tag(texts).tolist():
            found[index].append([start, end, LABELS[code]])
        entities = iter(found)
        for spans in sentences:
            for span in spans:
                span["entities"] = json.dumps(next(entities))
        column = batch.schema.get_field_index("sentences")
        return batch.set_column(column, "sentences", pa.array(sentences, pa.list_(SENTENCE)))


class EmbedBatch:
    """One worker's encoder, loaded once when Ray starts the actor; adds each article's unit vectors.

    Args:
        model: the model id (``qa.embedding.packaged.embedder_id``).
        batch_size: texts encoded together.
        stand_in_dimension: use the hash-seeded StandInEncoder of this
            dimension instead of the model (benchmarks only).
        device: ``"cuda"`` on a worker given a GPU, else ``"cpu"``.
    """

    def __init__(self, model: str, batch_size: int, stand_in_dimension: int | None, device: str) -> None:
        self._encoder: Encoder
        if stand_in_dimension:
            self._encoder = StandInEncoder(stand_in_dimension)
            return
        embedder = Embedder(model, batch_size, device=device)
        if device == "cpu":
            # Ray gives the actor one CPU: torch and ONNX Runtime get one thread.
            use_one_thread_per_question()
        embedder.dimension  # noqa: B018 - load now, so a bad model fails before any batch
        self._encoder = embedder

    def __call__(self, batch: pa.Table) -> pa.Table:
        bodies = batch.column("body").to_pylist()
        columns = {}
        for name in ("sentences", "passages"):
            spans = batch.column(name).to_pylist()
            texts = span_texts(bodies, spans)
            vectors = self._encoder.encode(texts)
            columns[name] = vector_lists(vectors, [len(row) for row in spans])
        return batch.append_column("sentence_vectors", columns["sentences"]).append_column(
            "passage_vectors", columns["passages"]
        )


def span_texts(bodies: Sequence[str], spans: Sequence[Sequence[dict[str, Any]]]) -> list[str]:
    """The text of every span (sentence or passage) of every article, in order."""
    return [body[s["start"] : s["end"]] for body, row in zip(bodies, spans, strict=True) for s in row]


def vector_lists(vectors: np.ndarray, counts: Sequence[int]) -> pa.ListArray:
    """``vectors`` (one row a text) as one list of vectors an article, ``counts[i]`` for article i.

    Built from offsets over the flat float32 buffer: no Python float is made.
    """
    rows, dimension = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    inner = pa.ListArray.from_arrays(pa.array(np.arange(rows + 1, dtype=np.int32) * dimension), flat)
    outer = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(outer), inner)


def write_batch(batch: pa.Table, out: str) -> pa.Table:
    """Write a batch's articles as one Parquet file per shard it holds; return what was written.

    A file is named by the row of its first article, so no two batches of a
    shard collide, and written under a hidden temporary name then renamed,
    so a reader of the folder never sees half a file.
    """
    summary = []
    shards = batch.column("shard").to_numpy()
    for shard in np.unique(shards):
        rows = batch.filter(pa.array(shards == shard))
        refused = [reason for reason in rows.column("refused").to_pylist() if reason]
        kept = rows.filter(pc.equal(rows.column("refused"), "")).select(list(OUTPUT_COLUMNS))
        if kept.num_rows:
            folder = shard_folder(Path(out), int(shard))
            folder.mkdir(parents=True, exist_ok=True)
            first = int(pc.min(kept.column("article")).as_py()) % MAX_SHARD_ROWS
            path = folder / f"part-{first:08d}.parquet"
            temporary = folder / f".{path.name}.tmp"
            pq.write_table(kept, temporary)
            os.replace(temporary, path)
        summary.append(
            {
                "shard": int(shard),
                "articles": kept.num_rows,
                "sentences": _total_length(kept["sentences"]),
                "passages": _total_length(kept["passages"]),
                "refused": refused,
            }
        )
    return pa.Table.from_pylist(summary, schema=SUMMARY)


def _total_length(column: pa.ChunkedArray) -> int:
    """Items in all the lists of a list column."""
    return int(pc.sum(pc.list_value_length(column)).as_py() or 0)
