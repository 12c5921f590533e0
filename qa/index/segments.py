"""Index segments: the split, embedded and tagged rows of one build or update.

Each build or update that adds articles writes one folder under
``segments/`` holding only the new articles' rows. Sentence, passage and
article ids are global and only grow: a segment's rows continue the previous
numbering, so the rows of all segments, in order, are the index's arrays. A
segment is never modified after it is written; an update hard-links it into
the new index folder.

Files of a segment::

    sentences.npy          int64 rows (article, start, end)
    passages.npy           int64 rows (article, start, end, first_sentence, last_sentence)
    sentence_vectors.npy   float32 unit vectors, one per sentence
    passage_vectors.npy    float32 unit vectors, one per passage (the dense index can be
                           rebuilt from them, e.g. to drop removed passages, without re-embedding)
    entities.npy           int64 rows (sentence, start, end, label), offsets within the sentence
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qa.embedding.encoder import Encoder
from qa.index.entities import EntityTagger
from qa.index.lexical import LexicalDoc
from qa.index.split import make_passages, split_sentences
from qa.records import Article

SEGMENTS_DIR = "segments"
_ARRAYS = ("sentences", "passages", "sentence_vectors", "passage_vectors", "entities")


@dataclass(frozen=True)
class Numbering:
    """The first global ids a new segment's rows take."""

    article: int
    sentence: int
    passage: int


@dataclass(frozen=True)
class WrittenSegment:
    """What the rest of an index needs from a segment just written."""

    sentences: int
    passage_ids: np.ndarray
    passage_vectors: np.ndarray
    lexical_docs: tuple[LexicalDoc, ...]


def segment_name(number: int) -> str:
    """The folder name of the ``number``-th segment (zero-padded so names sort in order)."""
    return f"{number:06d}"


def write_segment(
    folder: Path,
    articles: Sequence[Article],
    start: Numbering,
    sentences_per_passage: int,
    passage_stride: int,
    embedder: Encoder,
    tagger: EntityTagger,
    progress: bool,
    note: Callable[[str], None] | None = None,
) -> WrittenSegment:
    """Split, embed and tag ``articles`` into the new folder ``folder``, numbered from ``start``."""
    sentence_rows: list[tuple[int, int, int]] = []
    passage_rows: list[tuple[int, int, int, int, int]] = []
    sentence_texts: list[str] = []
    passage_texts: list[str] = []
    lexical_docs: list[LexicalDoc] = []
    for offset, article in enumerate(
        tqdm(articles, desc="Splitting articles", unit="article", disable=not progress)
    ):
        row = start.article + offset
        sentences = split_sentences(article.doc_id, article.body)
        passages = make_passages(
            article.body,
            sentences,
            sentences_per_passage,
            passage_stride,
            first_sentence_id=start.sentence + len(sentence_rows),
        )
        sentence_rows.extend((row, s.start, s.end) for s in sentences)
        sentence_texts.extend(s.text for s in sentences)
        for p in passages:
            pid = start.passage + len(passage_rows)
            lexical_docs.append(LexicalDoc(pid, p.text, article.outlet, article.date))
            passage_rows.append((row, p.start, p.end, p.first_sentence, p.last_sentence))
            passage_texts.append(p.text)

    if note is not None:
        note(f"Embedding {len(passage_texts)} passages with {embedder.model_id}")
    passage_vectors = embedder.encode(passage_texts, progress=progress)
    if note is not None:
        note(f"Embedding {len(sentence_texts)} sentences")
    sentence_vectors = embedder.encode(sentence_texts, progress=progress)
    entities = tagger.tag(sentence_texts, progress=progress)
    entities[:, 0] += start.sentence

    folder.mkdir(parents=True)
    np.save(folder / "sentences.npy", np.asarray(sentence_rows, dtype=np.int64).reshape(-1, 3))
    np.save(folder / "passages.npy", np.asarray(passage_rows, dtype=np.int64).reshape(-1, 5))
    np.save(folder / "sentence_vectors.npy", sentence_vectors)
    np.save(folder / "passage_vectors.npy", passage_vectors)
    np.save(folder / "entities.npy", entities)
    return WrittenSegment(
        sentences=len(sentence_rows),
        passage_ids=np.arange(start.passage, start.passage + len(passage_rows), dtype=np.int64),
        passage_vectors=passage_vectors,
        lexical_docs=tuple(lexical_docs),
    )


class StackedRows:
    """The rows of several memory-mapped arrays, read as one array of rows.

    Supports what query code asks of a vector array: ``len``, ``shape``,
    ``rows[i]`` for one global row and ``rows[ids]`` for an int array of
    them. Only the rows asked for are read from disk.
    """

    def __init__(self, parts: Sequence[np.ndarray], width: int) -> None:
        self._parts = list(parts)
        self._starts = np.cumsum([0, *(len(p) for p in self._parts)]).astype(np.int64)
        self.shape = (int(self._starts[-1]), width)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int | np.integer | np.ndarray) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            row = int(index)
            if not 0 <= row < len(self):
                raise IndexError(f"row {row} is outside 0..{len(self) - 1}")
            part = int(np.searchsorted(self._starts, row, side="right")) - 1
            return np.asarray(self._parts[part][row - self._starts[part]])
        ids = np.asarray(index, dtype=np.int64)
        if ids.ndim != 1:
            raise TypeError(f"rows are read by an int or a 1-d int array, got shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise IndexError(f"rows must lie in 0..{len(self) - 1}")
        out = np.empty((ids.size, self.shape[1]), dtype=np.float32)
        parts = np.searchsorted(self._starts, ids, side="right") - 1
        for part in np.unique(parts).tolist():
            chosen = parts == part
            out[chosen] = self._parts[part][ids[chosen] - self._starts[part]]
        return out


@dataclass(frozen=True)
class SegmentArrays:
    """The rows of every segment, in global id order.

    The int arrays are concatenated in memory (at 1M passages, about 2M
    sentences and 3M entities: 40 + 48 + 96 MB); the vectors stay on disk,
    memory-mapped.
    """

    sentences: np.ndarray
    passages: np.ndarray
    entities: np.ndarray
    sentence_vectors: StackedRows
    passage_vectors: StackedRows


def load_segments(index_dir: Path, names: Sequence[str], width: int) -> SegmentArrays:
    """Read the segments ``names`` of ``index_dir``, in order."""
    loaded: dict[str, list[np.ndarray]] = {key: [] for key in _ARRAYS}
    for name in names:
        folder = index_dir / SEGMENTS_DIR / name
        for key in _ARRAYS:
            mode = "r" if key.endswith("vectors") else None
            loaded[key].append(np.load(folder / f"{key}.npy", allow_pickle=False, mmap_mode=mode))
    for key, parts in loaded.items():
        if key.endswith("vectors") and any(p.ndim != 2 or p.shape[1] != width for p in parts):
            raise ValueError(f"{key}.npy of a segment does not have {width} columns")

    def joined(key: str, columns: int) -> np.ndarray:
        parts = [p.reshape(-1, columns) for p in loaded[key]]
        return np.concatenate(parts) if parts else np.zeros((0, columns), dtype=np.int64)

    return SegmentArrays(
        sentences=joined("sentences", 3),
        passages=joined("passages", 5),
        entities=joined("entities", 4),
        sentence_vectors=StackedRows(loaded["sentence_vectors"], width),
        passage_vectors=StackedRows(loaded["passage_vectors"], width),
    )
