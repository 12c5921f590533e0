"""Cross-validated XQuAD figures for the reader: it never scores a paragraph it trained on.

For each fold k of the XQuAD articles (titles in file order, modulo the fold
count), trains a reader with ``qa train-reader --holdout k`` (all the team's
news data and the other folds' XQuAD questions), then runs ``qa eval --squad
--fold k`` with it: every paragraph stays in the index, only fold k's
questions are asked. The per-fold figures and their question-weighted means
go to ``docs/xquad_cv.json``.

Usage: python scripts/xquad_cv.py [--folds 2] [--work build/xquad-cv] [--skip-training]
About 20 minutes a fold on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
XQUAD = ROOT.parent / "shared" / "benchmarks" / "xquad-en" / "xquad.en.json"
OUT = ROOT / "docs" / "xquad_cv.json"


def _run(args: list[str], stdout: Path | None = None) -> None:
    print("+ qa " + " ".join(args), file=sys.stderr, flush=True)
    with stdout.open("w", encoding="utf-8") if stdout else open("/dev/null", "w") as out:
        subprocess.run(
            [sys.executable, "-m", "qa", *args], check=True, cwd=ROOT, stdout=out if stdout else None
        )


def _weighted(folds: list[dict]) -> dict:
    """Question-weighted mean of each run's figures over the folds."""
    total = sum(f["questions"] for f in folds)
    runs: dict[str, dict[str, float | None]] = {}
    for mode in folds[0]["runs"]:
        runs[mode] = {}
        for metric in folds[0]["runs"][mode]:
            values = [(f["runs"][mode][metric], f["questions"]) for f in folds]
            if any(v is None for v, _ in values):
                runs[mode][metric] = None
                continue
            runs[mode][metric] = round(sum(v * n for v, n in values) / total, 4)
    return {"questions": total, "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "xquad-cv")
    parser.add_argument("--xquad", type=Path, default=XQUAD)
    parser.add_argument("--skip-training", action="store_true", help="reuse the fold readers in --work")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    folds = []
    for k in range(args.folds):
        reader = args.work / f"reader-fold{k}"
        if not args.skip_training:
            _run(["train-reader", "--holdout", str(k), "--folds", str(args.folds), "--out", str(reader)])
        result = args.work / f"eval-fold{k}.json"
        _run(
            [
                "eval",
                "--squad",
                str(args.xquad),
                "--fold",
                str(k),
                "--folds",
                str(args.folds),
                "--reader",
                str(reader),
                "--json",
            ],
            stdout=result,
        )
        figures = json.loads(result.read_text(encoding="utf-8"))
        figures["reader_sha256"] = json.loads((reader / "reader.json").read_text(encoding="utf-8"))["sha256"]
        folds.append(figures)
    summary = {
        "what": "XQuAD-en, cross-validated by article: fold k is scored by a reader trained without fold k",
        "command": f"python scripts/xquad_cv.py --folds {args.folds}",
        "mean": _weighted(folds),
        "folds": [
            {
                "name": f["name"],
                "questions": f["questions"],
                "reader_sha256": f["reader_sha256"],
                "runs": f["runs"],
            }
            for f in folds
        ],
    }
    OUT.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    mean = summary["mean"]["runs"]
    for mode, figures in mean.items():
        print(
            f"{mode:>12}: top sentence contains gold {figures['contains_gold']}, span F1 {figures['span_f1']}"
        )
    print(f"written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
