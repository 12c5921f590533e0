"""Real text available offline, and real embeddings of passages recombined from it.

The scale benchmark needs real MiniLM vectors (a random Gaussian cloud has no
clusters, so an approximate index looks better or worse on it than on news)
and real text to check the archive generator against. Locally there are about
3,000 real sentences: XQuAD-en's 240 Wikipedia paragraphs, the 112 news
articles under data/train/ and the 5 bundled articles. Passages are windows of
consecutive sentences of one document, as the engine cuts them, and, to reach
tens of thousands of distinct passages, the same windows with one sentence
swapped for a sentence of another document ("recombined").

Embedding is slow on 2 cores (about 36 passages a second when idle), so vectors
are cached in ``build/`` in chunks, and a run that is stopped resumes where it
left off.

Usage: python benchmarks/real_text.py --passages 30000
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
XQUAD = ROOT.parent / "shared" / "benchmarks" / "xquad-en" / "xquad.en.json"
if not XQUAD.exists():  # a worktree beside /work/main: the shared folder is /work/shared
    XQUAD = Path("/work/shared/benchmarks/xquad-en/xquad.en.json")
CACHE = ROOT / "build" / "real_vectors"
# Vectors are saved every CHUNK passages: about a minute of work on a busy
# 2-core machine, so an interrupted run loses little.
CHUNK = 2_000
# Window lengths in sentences: the engine's passages are 3 sentences
# (qa/settings.py); 2 to 4 gives the spread an archive's article ends produce.
WINDOW_SIZES = (2, 3, 4)
SEED = 20260901


@dataclass(frozen=True)
class RealDocument:
    """One real document: its body and where it came from."""

    doc_id: str
    source: str
    text: str


def real_documents() -> list[RealDocument]:
    """Every real document available offline, in a fixed order."""
    from qa.corpus.folder import split_date_prefix

    docs = []
    if XQUAD.exists():
        data = json.loads(XQUAD.read_text(encoding="utf-8"))
        for a, article in enumerate(data["data"]):
            for p, paragraph in enumerate(article["paragraphs"]):
                docs.append(RealDocument(f"xquad-{a}-{p}", "xquad", paragraph["context"]))
    for path in sorted((ROOT / "data" / "train").glob("news_articles_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                docs.append(RealDocument(f"train-{row['id']}", "train", row["body"]))
    for path in sorted((ROOT / "data" / "corpus").glob("*.txt")):
        docs.append(
            RealDocument(f"corpus-{path.stem}", "corpus", split_date_prefix(path.read_text("utf-8"))[1])
        )
    return docs


def real_questions() -> list[str]:
    """Every real question available offline (XQuAD, data/train, data/eval), deduplicated, in order."""
    questions: list[str] = []
    if XQUAD.exists():
        data = json.loads(XQUAD.read_text(encoding="utf-8"))
        questions += [qa["question"] for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]]
    paths = sorted((ROOT / "data" / "train").glob("*questions*.jsonl")) + sorted(
        (ROOT / "data" / "train").glob("xquad_extra_*.jsonl")
    )
    paths.append(ROOT / "data" / "eval" / "questions.jsonl")
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                questions.append(json.loads(line)["question"])
    return list(dict.fromkeys(q.strip() for q in questions if q.strip()))


def recombined_passages(count: int, seed: int = SEED) -> list[str]:
    """``count`` distinct passages of real sentences, deterministic for a seed.

    Every contiguous window (WINDOW_SIZES) of every document comes first, in a
    shuffled order; the rest are windows with one sentence replaced by a
    random sentence of another document, so topics stay mostly coherent.
    """
    from qa.index.split import split_sentences

    rng = np.random.default_rng(seed)
    sentence_lists = [[s.text for s in split_sentences(d.doc_id, d.text)] for d in real_documents()]
    sentence_lists = [s for s in sentence_lists if len(s) >= 2]
    pool = [(d, i) for d, sents in enumerate(sentence_lists) for i in range(len(sents))]
    windows = [
        (d, i, size)
        for d, sents in enumerate(sentence_lists)
        for size in WINDOW_SIZES
        for i in range(max(len(sents) - size, 0) + 1)
    ]
    order = rng.permutation(len(windows))
    passages: dict[str, None] = {}
    for w in order:
        d, i, size = windows[w]
        passages.setdefault(" ".join(sentence_lists[d][i : i + size]), None)
        if len(passages) >= count:
            return list(passages)
    while len(passages) < count:
        d, i, size = windows[int(rng.integers(len(windows)))]
        sentences = list(sentence_lists[d][i : i + size])
        other_doc, other_sentence = pool[int(rng.integers(len(pool)))]
        if other_doc == d:
            continue
        sentences[int(rng.integers(len(sentences)))] = sentence_lists[other_doc][other_sentence]
        passages.setdefault(" ".join(sentences), None)
    return list(passages)


def embed_cached(texts: list[str], name: str, progress: bool = True) -> np.ndarray:
    """Unit embeddings of ``texts`` with the packaged model, cached in chunks under build/.

    A chunk file is named by its texts' hash, so a changed passage list is
    never paired with stale vectors.
    """
    from qa.embedding.embedder import Embedder

    embedder = Embedder()
    parts = []
    starts = range(0, len(texts), CHUNK)
    for start in tqdm(starts, desc=f"embedding {name}", unit="chunk", file=sys.stderr, disable=not progress):
        path = _chunk_path(name, texts, start)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path.with_suffix(".tmp.npy"), embedder.encode(texts[start : start + CHUNK]))
            path.with_suffix(".tmp.npy").replace(path)
        parts.append(np.load(path))
    return np.concatenate(parts) if parts else np.zeros((0, 384), dtype=np.float32)


def cached_prefix(texts: list[str], name: str) -> np.ndarray:
    """The vectors of the longest run of ``texts``, from the start, already embedded by ``embed_cached``."""
    parts = []
    for start in range(0, len(texts), CHUNK):
        path = _chunk_path(name, texts, start)
        if not path.exists():
            break
        parts.append(np.load(path))
    return np.concatenate(parts) if parts else np.zeros((0, 384), dtype=np.float32)


def _chunk_path(name: str, texts: list[str], start: int) -> Path:
    return CACHE / name / f"{start:08d}-{hash_texts(texts[start : start + CHUNK])}.npy"


def hash_texts(texts: list[str]) -> str:
    """A short content hash of a list of texts."""
    import hashlib

    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Embed real passages (recombined from XQuAD, data/train and the bundled corpus) "
        "and real questions into build/real_vectors/, resumably.",
        epilog="example: python benchmarks/real_text.py --passages 30000",
    )
    parser.add_argument("--passages", type=int, default=30_000, help="passages to embed (default 30000)")
    args = parser.parse_args()
    questions = real_questions()
    print(f"{len(real_documents())} real documents, {len(questions)} real questions", file=sys.stderr)
    embed_cached(questions, "questions")
    embed_cached(recombined_passages(args.passages), "passages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
