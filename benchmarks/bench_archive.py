"""Benchmark: loading a large archive corpus (JSON Lines, CSV) with ``load_corpus``.

For each kind, a synthetic archive of ``--rows`` short articles is written,
then loaded in a fresh process, which reports:

1. wall time of ``load_corpus`` and of ``corpus_signature``;
2. memory: resident size before the load, after it (the articles held), and
   the peak, so ``peak - after`` is what reading cost beyond the articles;
3. for ``--trace-rows`` rows, Python's own allocation peak over what the
   articles hold at the end (``tracemalloc``), which does not depend on how
   the allocator returns memory to the system.

Writes ``benchmarks/results/archive.json`` and prints a table. Timings depend
on the machine and its load: compare within one run.

Usage: python benchmarks/bench_archive.py [--rows 1000000] [--trace-rows 100000]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
KINDS = ("jsonl", "csv")
# Words in a synthetic body: about 250 bytes, a news brief; long enough that the
# file is mostly text, short enough that a million rows fit a laptop's disk.
BODY_WORDS = 40
OUTLETS = ("NZ Herald", "1 NEWS", "Star Observer", "Stuff", "RNZ")

_CHILD = """
import json, resource, sys, time, tracemalloc
from pathlib import Path
from qa.corpus.folder import corpus_signature, load_corpus

def rss_mb():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20

path, trace = Path(sys.argv[1]), sys.argv[2] == "trace"
before = rss_mb()
if trace:
    tracemalloc.start()
start = time.perf_counter()
load = load_corpus(path)
seconds = time.perf_counter() - start
figures = {"rows": len(load.articles), "load_s": round(seconds, 2)}
if trace:
    held, peak = tracemalloc.get_traced_memory()
    figures.update(traced_held_mb=round(held / 2**20, 1))
    figures.update(traced_extra_peak_mb=round((peak - held) / 2**20, 1))
else:
    after = rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    corpus_signature(path)
    figures.update(
        rss_before_mb=round(before), rss_after_mb=round(after), rss_peak_mb=round(peak),
        extra_peak_mb=round(peak - after), signature_ms=round((time.perf_counter() - start) * 1000, 2),
    )
print(json.dumps(figures))
"""


def write_archive(path: Path, kind: str, rows: int) -> None:
    """A seeded archive of ``rows`` articles, written a row at a time."""
    rng = random.Random(9)
    vocabulary = [f"word{n}" for n in range(5000)]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if kind == "csv":
            writer.writerow(["id", "text", "outlet", "date", "title", "url"])
        for n in range(rows):
            body = " ".join(rng.choices(vocabulary, k=BODY_WORDS)) + "."
            date = f"20{rng.randint(10, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            row = [f"a{n}", body, OUTLETS[n % len(OUTLETS)], date, f"Title {n}", f"https://news.example/{n}"]
            if kind == "csv":
                writer.writerow(row)
            else:
                keys = ("id", "text", "outlet", "date", "title", "url")
                handle.write(json.dumps(dict(zip(keys, row, strict=True))) + "\n")


def measure(path: Path, trace: bool) -> dict:
    """Load ``path`` in a fresh process and return what it reports."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), "trace" if trace else "plain"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the timed archive")
    parser.add_argument("--trace-rows", type=int, default=100_000, help="rows in the tracemalloc archive")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            for rows, trace in ((args.rows, False), (args.trace_rows, True)):
                path = Path(tmp) / f"articles-{rows}.{kind}"
                write_archive(path, kind, rows)
                figures = measure(path, trace)
                results.append({"kind": kind, "file_mb": round(path.stat().st_size / 2**20), **figures})
                path.unlink()
                print(json.dumps(results[-1]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            # The machine may be shared: its 1/5/15-minute load says how busy it was.
            "load_average": [round(x, 1) for x in os.getloadavg()],
        },
        "body_words": BODY_WORDS,
        "results": results,
    }
    (RESULTS / "archive.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("| kind | rows | file | load | RSS before / after / peak | peak over after | traced extra peak |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        memory = (
            f"{r['rss_before_mb']} / {r['rss_after_mb']} / {r['rss_peak_mb']} MB"
            if "rss_peak_mb" in r
            else f"(held {r['traced_held_mb']} MB)"
        )
        extra = f"{r['extra_peak_mb']} MB" if "extra_peak_mb" in r else ""
        traced = f"{r['traced_extra_peak_mb']} MB" if "traced_extra_peak_mb" in r else ""
        size = f"{r['file_mb']} MB"
        print(f"| {r['kind']} | {r['rows']:,} | {size} | {r['load_s']} s | {memory} | {extra} | {traced} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
