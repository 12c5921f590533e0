"""Tune how the reader blends with the evidence score, on the dev set (evaluation-only data).

For each reader weight and number of candidates read, runs the dev questions
once (hybrid retrieval, no threshold) and reports top-1, top-3, and the
abstention figures at the highest threshold that keeps wrongly abstained
answerable questions at or under 5%. Prints a Markdown table; docs/evaluation.md's
"Reader" tuning table is its output.

Usage: python scripts/tune_reader.py [--reader PATH] [--weights 0.5 0.7 1.0] [--candidates 8 12 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "data" / "eval" / "questions.jsonl"
CORPUS = ROOT / "data" / "corpus"
MAX_FALSE_ABSTENTION = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reader", default=None, help="reader to tune (default: the shipped one)")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5, 1.0])
    parser.add_argument("--candidates", type=int, nargs="+", default=[3, 5, 8, 12])
    args = parser.parse_args()
    from qa.engine import Engine
    from qa.evaluation.evaluate import evaluate, load_questions
    from qa.evaluation.metrics import abstention_sweep

    questions = load_questions(QUESTIONS)
    with tempfile.TemporaryDirectory(prefix="qa-tune-") as tmp:
        engine = Engine.open(CORPUS, Path(tmp) / "index", progress=False, reader=args.reader)
        print(
            "| reader weight | candidates | top-1 | top-3 | threshold "
            "| unanswerable abstained | wrongly abstained |"
        )
        print("|---|---|---|---|---|---|---|")
        # The first row reads nothing: evidence ranks and abstains, as before the reader.
        grid = [(0.0, 0)] + [(w, n) for w in args.weights for n in args.candidates]
        for weight, n in grid:
            view = engine.with_settings(reader_weight=weight, reader_candidates=n)
            run = evaluate(view, questions, "dev", modes=("hybrid",), progress=False).runs[0]
            s = run.summary
            scores = [o.best_score for o in run.outcomes]
            sweep = abstention_sweep(scores, [o.answerable for o in run.outcomes])
            ok = [p for p in sweep if (p.false_abstention_rate or 0.0) <= MAX_FALSE_ABSTENTION]
            best = max(ok, key=lambda p: (p.recall or 0.0, p.threshold))
            print(
                f"| {weight if n else '-'} | {n} | {s.contains_gold:.3f} "
                f"| {s.contains_gold_at_3:.3f} "
                f"| {best.threshold:.2f} | {best.recall:.2f} | {best.false_abstention_rate:.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
