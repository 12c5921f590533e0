"""Build, save and load the on-disk index: plain files plus a JSON manifest.

Layout of an index folder::

    manifest.json          schema version, model, dimension, corpus fingerprint,
                           splitting settings, counts, size and sha256 of every file
    articles.jsonl         one article a line: metadata and body
    sentences.npy          int64 rows (article, start, end)
    passages.npy           int64 rows (article, start, end, first_sentence, last_sentence)
    sentence_vectors.npy   float32 unit vectors, one per sentence
    entities.npy           int64 rows (sentence, start, end, label) of named
                           entities, offsets within the sentence (qa.entities)
    passages.faiss         FAISS index of passage vectors (id = row)
    bm25/                  tantivy index of passage text, outlet and date

A build writes into a temporary sibling folder and swaps it into place in one
atomic rename, so a build killed at any point leaves the previous index as it
was; the next build clears what a killed one left behind. Builds of one index
take a lock kept outside the work tree (see :func:`lock_path`). Nothing is
pickled.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from qa.dense import INDEX_FACTORY, build_dense_index, load_dense_index, save_dense_index
from qa.embed import Embedder
from qa.entities import EntityTagger
from qa.errors import IndexStoreError
from qa.lexical import LexicalDoc, LexicalIndex, build_lexical_index
from qa.records import Article
from qa.segment import make_passages, split_sentences

# Bump when the layout or the meaning of any file changes: older indexes are
# then rebuilt instead of misread.
# 3: the manifest holds a sha256 of every file. 4: entities.npy.
SCHEMA_VERSION = 4
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class IndexSpec:
    """What an index must have been built from to be usable as is."""

    model: str
    corpus_fingerprint: str
    sentences_per_passage: int
    passage_stride: int
    schema_version: int = SCHEMA_VERSION
    index_factory: str = INDEX_FACTORY


@dataclass
class IndexData:
    """A loaded index: everything a query needs, already computed."""

    manifest: dict[str, Any]
    articles: tuple[Article, ...]
    sentences: np.ndarray
    passages: np.ndarray
    sentence_vectors: np.ndarray
    dense: faiss.Index
    lexical: LexicalIndex
    entities: np.ndarray


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    """The manifest of ``index_dir``, or None when there is no readable one."""
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("spec"), dict):
        return None
    return manifest


def stale_reasons(manifest: dict[str, Any], spec: IndexSpec) -> list[str]:
    """Why an index with ``manifest`` cannot serve ``spec``; empty when it can."""
    labels = {
        "schema_version": "the index format changed",
        "model": "the embedding model changed",
        "corpus_fingerprint": "the corpus changed",
        "sentences_per_passage": "the passage size changed",
        "passage_stride": "the passage stride changed",
        "index_factory": "the FAISS index type changed",
    }
    built = manifest.get("spec", {})
    return [label for key, label in labels.items() if built.get(key) != getattr(spec, key)]


def load_index(index_dir: Path) -> IndexData:
    """Load and check an index folder.

    Raises:
        IndexStoreError: a file is missing, truncated or inconsistent with the
            manifest. The message says which.
    """
    manifest = read_manifest(index_dir)
    if manifest is None:
        raise IndexStoreError(f"no readable {MANIFEST} in {index_dir}")
    if manifest.get("manifest_sha256") != _manifest_digest(manifest):
        raise IndexStoreError(f"{MANIFEST} does not match its own checksum")
    try:
        # Checked before any file is opened: a damaged tantivy or FAISS file
        # can crash its reader instead of raising.
        for name, (size, digest) in manifest["files"].items():
            path = index_dir / name
            if not path.is_file():
                raise IndexStoreError(f"{name} is missing")
            actual = path.stat().st_size
            if actual != size:
                raise IndexStoreError(f"{name} is {actual} bytes, manifest says {size}")
            if file_sha256(path) != digest:
                raise IndexStoreError(f"{name} does not match its checksum in the manifest")
        counts = manifest["counts"]
        articles = tuple(_read_articles(index_dir / "articles.jsonl"))
        sentences = np.load(index_dir / "sentences.npy", allow_pickle=False)
        passages = np.load(index_dir / "passages.npy", allow_pickle=False)
        vectors = np.load(index_dir / "sentence_vectors.npy", allow_pickle=False, mmap_mode="r")
        dense = load_dense_index(index_dir / "passages.faiss")
        lexical = LexicalIndex(index_dir / "bm25")
        entities = np.load(index_dir / "entities.npy", allow_pickle=False)
        found = {
            "articles": len(articles),
            "sentences": len(sentences),
            "passages": len(passages),
            "sentence_vectors": len(vectors),
            "faiss": int(dense.ntotal),
            "bm25": lexical.num_docs,
        }
        expected = {
            "articles": counts["articles"],
            "sentences": counts["sentences"],
            "passages": counts["passages"],
            "sentence_vectors": counts["sentences"],
            "faiss": counts["passages"],
            "bm25": counts["passages"],
        }
        wrong = [f"{k}: {found[k]} (expected {expected[k]})" for k in found if found[k] != expected[k]]
        if wrong:
            raise IndexStoreError("counts disagree with the manifest: " + "; ".join(wrong))
        if vectors.shape[1] != manifest["dimension"] or dense.d != manifest["dimension"]:
            raise IndexStoreError("vector dimension disagrees with the manifest")
        if (
            entities.ndim != 2
            or entities.shape[1] != 4
            or (len(entities) and not 0 <= int(entities[:, 0].max()) < len(sentences))
        ):
            raise IndexStoreError("entities.npy does not fit the sentences")
    except IndexStoreError:
        raise
    except Exception as exc:  # a damaged file surfaces as many exception types
        raise IndexStoreError(f"index in {index_dir} is unreadable: {exc}") from exc
    return IndexData(manifest, articles, sentences, passages, vectors, dense, lexical, entities)


def build_index(
    index_dir: Path,
    articles: Sequence[Article],
    spec: IndexSpec,
    embedder: Embedder,
    progress: bool = True,
    force: bool = True,
    note: Callable[[str], None] | None = None,
    reader: dict[str, str] | None = None,
) -> None:
    """Split, embed and index ``articles`` into ``index_dir``, atomically.

    Holds a lock (:func:`lock_path`) so two builds of one index never
    interleave: the second says whose lock it waits for, then, unless
    ``force``, finds the index the first one built current and keeps it.
    ``reader`` (id and sha256 of the reader the index is built to answer
    with) is recorded in the manifest; the index does not depend on it.

    Raises:
        IndexStoreError: the index folder or its lock cannot be written.
    """
    index_dir = Path(index_dir)
    try:
        index_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexStoreError(f"cannot create the index folder {index_dir}: {exc.strerror}") from exc
    with _build_lock(index_dir, note):
        _check_replaceable(index_dir)
        _clear_leftovers(index_dir)
        if not force and _is_current(index_dir, spec):
            return
        tmp = index_dir.parent / f".{index_dir.name}.building-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            _write_index(tmp, articles, spec, embedder, progress, reader)
            _swap_into_place(tmp, index_dir)
        except OSError as exc:
            raise IndexStoreError(f"cannot write the index to {index_dir}: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def lock_path(index_dir: Path) -> Path:
    """The lock file that builds of ``index_dir`` share.

    It cannot live in the index folder, which a build replaces whole, nor
    beside it, where it would litter the work tree (``index/`` sits in the
    repository). So it lives in the user's runtime or temporary folder, named
    after the index's absolute path.
    """
    resolved = str(Path(index_dir).resolve())
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"newsqa-locks-{os.getuid()}"
    key = hashlib.sha256(resolved.encode()).hexdigest()[:16]
    return base / f"{Path(resolved).name}-{key}.lock"


def _write_index(
    folder: Path,
    articles: Sequence[Article],
    spec: IndexSpec,
    embedder: Embedder,
    progress: bool,
    reader: dict[str, str] | None,
) -> None:
    sentence_rows: list[tuple[int, int, int]] = []
    passage_rows: list[tuple[int, int, int, int, int]] = []
    sentence_texts: list[str] = []
    passage_texts: list[str] = []
    lexical_docs: list[LexicalDoc] = []
    for a_idx, article in enumerate(
        tqdm(articles, desc="Splitting articles", unit="article", disable=not progress)
    ):
        sentences = split_sentences(article.doc_id, article.body)
        passages = make_passages(
            article.body,
            sentences,
            spec.sentences_per_passage,
            spec.passage_stride,
            first_sentence_id=len(sentence_rows),
        )
        sentence_rows.extend((a_idx, s.start, s.end) for s in sentences)
        sentence_texts.extend(s.text for s in sentences)
        for p in passages:
            lexical_docs.append(LexicalDoc(len(passage_rows), p.text, article.outlet, article.date))
            passage_rows.append((a_idx, p.start, p.end, p.first_sentence, p.last_sentence))
            passage_texts.append(p.text)

    if progress:
        print(
            f"Embedding {len(passage_texts)} passages with {embedder.model_id}", file=sys.stderr, flush=True
        )
    passage_vectors = embedder.encode(passage_texts, progress=progress)
    if progress:
        print(f"Embedding {len(sentence_texts)} sentences", file=sys.stderr, flush=True)
    sentence_vectors = embedder.encode(sentence_texts, progress=progress)
    tagger = EntityTagger()
    entities = tagger.tag(sentence_texts, progress=progress)

    with (folder / "articles.jsonl").open("w", encoding="utf-8") as out:
        for article in articles:
            out.write(json.dumps(asdict(article), ensure_ascii=False) + "\n")
    np.save(folder / "sentences.npy", np.asarray(sentence_rows, dtype=np.int64).reshape(-1, 3))
    np.save(folder / "passages.npy", np.asarray(passage_rows, dtype=np.int64).reshape(-1, 5))
    np.save(folder / "sentence_vectors.npy", sentence_vectors)
    np.save(folder / "entities.npy", entities)
    save_dense_index(build_dense_index(passage_vectors), folder / "passages.faiss")
    (folder / "bm25").mkdir()
    build_lexical_index(folder / "bm25", lexical_docs)

    manifest = {
        "spec": asdict(spec),
        "dimension": int(passage_vectors.shape[1]),
        "entity_model": tagger.version,
        "reader": reader,
        "counts": {
            "articles": len(articles),
            "sentences": len(sentence_rows),
            "passages": len(passage_rows),
        },
        # Every file, tantivy's included, with its size and sha256: a damaged
        # file is named on load instead of being misread.
        "files": {
            path.relative_to(folder).as_posix(): [path.stat().st_size, file_sha256(path)]
            for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.name.startswith(".tantivy-")
        },
    }
    # A change inside the manifest (a size, a checksum) must name the manifest,
    # not the file whose entry it altered.
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    # The manifest is written last: a folder without one is never a valid index.
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's content other than this digest itself."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _is_current(index_dir: Path, spec: IndexSpec) -> bool:
    manifest = read_manifest(index_dir)
    if manifest is None or stale_reasons(manifest, spec):
        return False
    try:
        load_index(index_dir)
    except IndexStoreError:
        return False
    return True


def _check_replaceable(index_dir: Path) -> None:
    """Refuse to build over anything but an index or an empty folder.

    A build replaces the whole folder, so ``--index data/corpus`` given by
    mistake would otherwise delete the corpus.
    """
    if not index_dir.exists() and not index_dir.is_symlink():
        return
    if not index_dir.is_dir():
        raise IndexStoreError(f"{index_dir} is a file, not an index folder")
    if (index_dir / MANIFEST).exists() or not any(index_dir.iterdir()):
        return
    raise IndexStoreError(
        f"{index_dir} holds other files and no {MANIFEST}, so it is not a newsqa index and is "
        "left alone; give --index a new or empty folder"
    )


def _clear_leftovers(index_dir: Path) -> None:
    """Remove the temporary folders of builds that were killed (called under the lock)."""
    for pattern in (f".{index_dir.name}.building-*", f".{index_dir.name}.old-*"):
        for folder in index_dir.parent.glob(pattern):
            shutil.rmtree(folder, ignore_errors=True)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _swap_into_place(tmp: Path, index_dir: Path) -> None:
    """Put ``tmp`` at ``index_dir`` so that a reader always finds a whole index there.

    On Linux renameat2(RENAME_EXCHANGE) swaps the two folders in one step; a
    kill right after it leaves the old index in ``tmp``, which the next build
    clears. Elsewhere two renames leave a moment with no index, after which
    the next start rebuilds.
    """
    if not index_dir.exists():
        os.replace(tmp, index_dir)
        return
    if _exchange(tmp, index_dir):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = index_dir.parent / f".{index_dir.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(index_dir, old)
    os.replace(tmp, index_dir)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    renameat2 = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name else None
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):  # old kernel or a file system without exchange
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextlib.contextmanager
def _build_lock(index_dir: Path, note: Callable[[str], None] | None) -> Iterator[None]:
    path = lock_path(index_dir)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle = path.open("w")
    except OSError as exc:
        raise IndexStoreError(f"cannot create the build lock {path}: {exc.strerror}") from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if note is not None:
                note(f"another process is building {index_dir} (lock {path}); waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_articles(path: Path) -> Iterator[Article]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            yield Article(**json.loads(line))
