"""Where outlets differ: precision and recall of the detector, and what it costs per question.

Runs the engine, as a user gets it, over the two hand-labelled multi-outlet sets:

- ``data/train/differences`` (71 questions, 25 articles): the development set the
  detector's rules and settings were chosen on;
- ``data/eval/differences`` (50 questions, 20 articles): the evaluation set, only reported on
  (its failures were read while the detector was built: see docs/evaluation.md);
- ``data/eval/differences2`` (52 questions, 20 articles): a second evaluation set, written after
  the detector was tuned and first run when its figures were taken.

and times ``Engine.ask`` over each question file with the detector on and off
(``qa.answer.answers.find_differences`` replaced by one that finds nothing), in
alternating rounds, so the cost is a ratio measured in one run. Writes
``results/outlet_differences.json`` and prints a Markdown table.

    .venv/bin/python benchmarks/outlet_differences.py     # about three minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import qa.answer.answers as answers
from qa.engine import Engine
from qa.evaluation.differences import difference_score_json
from qa.evaluation.evaluate import EvalQuestion, load_questions, score_differences

ROOT = Path(__file__).resolve().parent.parent
SETS = {
    "development (data/train/differences)": ROOT / "data" / "train" / "differences",
    "evaluation (data/eval/differences)": ROOT / "data" / "eval" / "differences",
    "held-out evaluation (data/eval/differences2)": ROOT / "data" / "eval" / "differences2",
}
ROUNDS = 3


def _median_ms(engine: Engine, questions: list[EvalQuestion]) -> float:
    """The median time of one ask over ``questions``, in milliseconds."""
    times = []
    for q in questions:
        started = time.perf_counter()
        engine.ask(q.question, history=q.history)
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def _cost(engine: Engine, questions: list[EvalQuestion]) -> dict[str, float]:
    """Median ask time with and without the detector, alternating rounds (medians of the rounds)."""
    detector = answers.find_differences
    on, off = [], []
    _median_ms(engine, questions)  # warm caches and thread pools
    try:
        for _ in range(ROUNDS):
            answers.find_differences = detector
            on.append(_median_ms(engine, questions))
            answers.find_differences = lambda *args, **kwargs: ()
            off.append(_median_ms(engine, questions))
    finally:
        answers.find_differences = detector
    with_ms, without_ms = statistics.median(on), statistics.median(off)
    return {
        "ask_ms_with": round(with_ms, 2),
        "ask_ms_without": round(without_ms, 2),
        "ratio": round(with_ms / without_ms, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "outlet_differences.json"
    )
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in SETS.items():
            engine = Engine.open(
                folder / "corpus", Path(tmp) / f"{folder.parent.name}-{folder.name}", progress=False
            )
            questions = list(load_questions(folder / "questions.jsonl"))
            score = score_differences(engine, questions)
            assert score is not None
            results[name] = {**difference_score_json(score), **_cost(engine, questions)}
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(
        "| set | questions | reported | correct | precision | gold | found | recall | ask ms with / without |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['questions']} | {r['reported']} | {r['correct']} | {r['precision']} "
            f"| {r['gold']} | {r['found']} | {r['recall']} "
            f"| {r['ask_ms_with']} / {r['ask_ms_without']} (ratio {r['ratio']}) |"
        )


if __name__ == "__main__":
    main()
