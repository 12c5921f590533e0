"""Soak test: thousands of questions in one process, watching its memory for a leak.

Opens the engine on the bundled corpus (index in a temporary folder unless
``--index`` is given) and asks ``--questions`` (2,000) questions: the dev
questions in turn, every third one as a follow-up with the previous question
as history, every fifth with an outlet filter, every seventh with a date
range, and every eleventh a question of random characters. The resident set
size (VmRSS) is read after every ``--every`` (100) questions.

The check: RSS after all of them is within 10% of RSS after the first 100
(the first 100 pay for the model's and allocators' warm-up). Writes
``benchmarks/results/soak.json`` and ``soak.png`` and exits 1 if the check fails.

Usage: python benchmarks/soak.py [--questions 2000] [--every 100]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# Growth allowed between the first checkpoint and the last.
TOLERANCE = 0.10


def rss_mb() -> float:
    """This process's resident set size now (not its peak), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def soak(index: Path, total: int, every: int, seed: int) -> dict:
    from qa.engine import Engine

    engine = Engine.open(ROOT / "data" / "corpus", index, progress=False)
    with (ROOT / "data" / "eval" / "questions.jsonl").open(encoding="utf-8") as lines:
        questions = [json.loads(line)["question"] for line in lines if line.strip()]
    rng = random.Random(seed)
    checkpoints = [(0, round(rss_mb(), 1))]
    started = time.perf_counter()
    previous = questions[0]
    for n in range(1, total + 1):
        question = questions[n % len(questions)]
        if n % 11 == 0:
            question = "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(1, 300)))
        options: dict = {}
        if n % 3 == 0:
            options["history"] = [previous]
        if n % 5 == 0:
            options["outlets"] = [engine.outlets[n % len(engine.outlets)]]
        if n % 7 == 0:
            options["since"], options["until"] = "2020-03-01", "2020-03-10"
        engine.ask(question, **options)
        previous = question
        if n % every == 0:
            checkpoints.append((n, round(rss_mb(), 1)))
    elapsed = time.perf_counter() - started
    first = next(mb for n, mb in checkpoints if n == every)
    last = checkpoints[-1][1]
    return {
        "questions": total,
        "seconds": round(elapsed, 1),
        "questions_per_s": round(total / elapsed, 1),
        "rss_mb_after_first": {"questions": every, "mb": first},
        "rss_mb_after_all": last,
        "growth": round((last - first) / first, 4),
        "tolerance": TOLERANCE,
        "checkpoints": checkpoints,
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys = zip(*report["checkpoints"], strict=True)
    first = report["rss_mb_after_first"]["mb"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(xs, ys, marker="o", markersize=3, label="RSS")
    ax.axhline(first * (1 + TOLERANCE), color="red", linestyle="--", label=f"+{TOLERANCE:.0%} of RSS at 100")
    ax.set_xlabel("questions asked")
    ax.set_ylabel("resident set size (MB)")
    ax.set_title(f"Soak: {report['questions']} questions in one process (growth {report['growth']:+.1%})")
    ax.set_ylim(0, first * (1 + TOLERANCE) * 1.15)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--index", type=Path, help="index folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args()
    if args.questions < 2 * args.every:
        parser.error("--questions must be at least twice --every")
    with tempfile.TemporaryDirectory(prefix="newsqa-soak-") as tmp:
        report = soak(args.index or Path(tmp) / "index", args.questions, args.every, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot(report, args.out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in report.items() if k != "checkpoints"}, indent=2))
    return 0 if report["growth"] <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
