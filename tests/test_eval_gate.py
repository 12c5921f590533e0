"""The CI gate: the dev-set figures must not drop below data/eval/thresholds.json.

Runs the real evaluation (real model, real index of the bundled corpus, every
retrieval and ranking mode) once per module, then checks the thresholds, the
question-file validation, and the ``qa eval`` command's JSON and report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.cli import main
from qa.engine import Engine
from qa.errors import InputError
from qa.evaluation.evaluate import MODES, EvalQuestion, Evaluation, evaluate, load_questions, summary_json
from qa.evaluation.report import HIT_PLOT, REPORT_FILE, SCORES_PLOT, SWEEP_PLOT, write_report

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "data" / "eval" / "questions.jsonl"
THRESHOLDS = ROOT / "data" / "eval" / "thresholds.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def dev_evaluation(engine: Engine) -> Evaluation:
    return evaluate(engine, load_questions(QUESTIONS), QUESTIONS.name, progress=False)


def test_dev_set_meets_thresholds(dev_evaluation: Evaluation) -> None:
    gate = json.loads(THRESHOLDS.read_text(encoding="utf-8"))
    runs = {run.mode: summary_json(run.summary) for run in dev_evaluation.runs}
    failures = []
    for mode, minimums in gate["min"].items():
        for metric, floor in minimums.items():
            value = runs[mode][metric]
            if value is None or value < floor:
                failures.append(f"{mode} {metric} = {value}, below the minimum {floor}")
    for mode, maximums in gate["max"].items():
        for metric, ceiling in maximums.items():
            value = runs[mode][metric]
            if value is None or value > ceiling:
                failures.append(f"{mode} {metric} = {value}, above the maximum {ceiling}")
    assert not failures, "\n".join(failures)


def test_every_ablation_ran_over_every_question(dev_evaluation: Evaluation) -> None:
    count = len(load_questions(QUESTIONS))
    assert [run.mode for run in dev_evaluation.runs] == list(MODES)
    assert MODES == ("hybrid", "bm25", "dense", "no-reader", "reader-only")
    assert all(len(run.outcomes) == count for run in dev_evaluation.runs)
    assert len(dev_evaluation.runs[0].sweep) == 101


def test_report_writes_markdown_and_plots(dev_evaluation: Evaluation, tmp_path: Path) -> None:
    path = write_report(dev_evaluation, tmp_path / "report")
    text = path.read_text(encoding="utf-8")
    first = dev_evaluation.runs[0].outcomes[0]
    assert f"| {first.id} |" in text
    assert "| hit@5 |" in text
    for plot in (SCORES_PLOT, HIT_PLOT, SWEEP_PLOT):
        assert f"]({plot})" in text
        assert (tmp_path / "report" / plot).read_bytes().startswith(PNG_MAGIC)


def test_bad_lines_are_reported_with_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"id": "a", "question": "Who?", "answers": ["x"], "sources": ["d"], "answerable": true}\n'
        "not json\n"
        "\n"
        '{"id": "b", "question": "", "answers": []}\n'
        '{"id": "a", "question": "Again?", "answerable": false}\n'
        '{"id": "c", "question": "Why?", "answers": "x", "sources": ["d"]}\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError) as caught:
        load_questions(path)
    message = str(caught.value)
    assert "4 bad line(s)" in message
    assert f"{path}:2:" in message
    assert f"{path}:4: 'question' must be a non-empty string" in message
    assert f"{path}:5: id 'a' is used by an earlier line" in message
    assert f"{path}:6: 'answers' must be a list of strings" in message


def test_unknown_gold_source_is_refused(engine: Engine) -> None:
    question = EvalQuestion("x", "Who?", ("Perrone",), ("no_such_doc",), True)
    with pytest.raises(InputError, match="1 gold source\\(s\\) not in this corpus: no_such_doc"):
        evaluate(engine, [question], "typo", progress=False)


def test_cli_eval_json_and_report(
    bundled_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Three dev questions keep the command quick; the full run is tested above.
    lines = QUESTIONS.read_text(encoding="utf-8").splitlines()[:3]
    small = tmp_path / "three.jsonl"
    small.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = tmp_path / "report"
    status = main(
        ["eval", str(small), "--corpus", str(ROOT / "data" / "corpus"), "--index", str(bundled_index),
         "--json", "--report", str(report)]
    )
    out = capsys.readouterr().out
    assert status == 0
    figures = json.loads(out)
    assert figures["questions"] == 3
    assert set(figures["runs"]) == set(MODES)
    assert figures["reader"]["id"] == "newsqa-reader" and len(figures["reader"]["sha256"]) == 64
    assert 0.0 <= figures["runs"]["hybrid"]["mrr@10"] <= 1.0
    assert (report / REPORT_FILE).is_file()
    assert all((report / plot).is_file() for plot in (SCORES_PLOT, HIT_PLOT, SWEEP_PLOT))


def test_cli_eval_needs_exactly_one_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval"]) == 1
    assert "give either a QUESTIONS.jsonl file or --squad" in capsys.readouterr().err
