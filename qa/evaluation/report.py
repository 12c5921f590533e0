"""The evaluation report: one Markdown file with a per-question table and PNG plots.

matplotlib is imported only here, inside :func:`write_report`, with the Agg
backend, so the report renders without a display and ``qa --help`` stays light.
"""

from __future__ import annotations

from pathlib import Path

from qa.errors import InputError
from qa.evaluation.evaluate import Evaluation, Run, summary_json
from qa.evaluation.metrics import MAX_RANK, QuestionOutcome

REPORT_FILE = "report.md"
SCORES_PLOT = "scores.png"
HIT_PLOT = "hit_at_k.png"
SWEEP_PLOT = "sweep.png"
# Long answer sentences are cut in the table so a row stays readable.
_CELL_CHARS = 200


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"


def figure_text(value: float | None) -> str:
    """A rate as shown in reports and the CLI: three decimals, "n/a" where undefined."""
    return "n/a" if value is None else f"{value:.3f}"


def _metrics_table(evaluation: Evaluation) -> list[str]:
    figures = {run.mode: summary_json(run.summary) for run in evaluation.runs}
    modes = [run.mode for run in evaluation.runs]
    lines = ["| metric | " + " | ".join(modes) + " |", "|---" * (len(modes) + 1) + "|"]
    for metric in figures[modes[0]]:
        lines.append(f"| {metric} | " + " | ".join(figure_text(figures[m][metric]) for m in modes) + " |")
    return lines


def _answer_cell(outcome: QuestionOutcome) -> str:
    answer = _cell(outcome.top_answer) or "(none)"
    return f"(abstained) {answer}" if outcome.abstained else answer


def _differences_section(evaluation: Evaluation) -> list[str]:
    """Difference precision and recall, and each labelled question's gold and reported values."""
    score = evaluation.differences
    if score is None:
        return []
    lines = [
        "## Where outlets differ",
        "",
        f"{score.questions} labelled questions: {score.reported} differences reported, "
        f"{score.correct} correct "
        f"(precision {figure_text(score.precision)}); {score.found} of {score.gold} gold differences found "
        f"(recall {figure_text(score.recall)}).",
        "",
        "| id | question | gold | reported | result |",
        "|---|---|---|---|---|",
    ]
    for o in score.outcomes:
        gold = "; ".join(" vs ".join(v.text for v in g.values) for g in o.gold) or "(none)"
        reported = "; ".join(" vs ".join(f"{v.text} ({v.outlet})" for v in d.values) for d in o.reported)
        right = all(o.correct) and o.found == len(o.gold)
        lines.append(
            f"| {_cell(o.id)} | {_cell(o.question)} | {_cell(gold)} | {_cell(reported or '(none)')} "
            f"| {'pass' if right else 'FAIL'} |"
        )
    return [*lines, ""]


def _question_table(run: Run) -> list[str]:
    lines = [
        "| id | question | gold | top answer | highlight | cited | score | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in run.outcomes:
        gold = " / ".join(o.golds) if o.answerable else "(unanswerable)"
        cited = f"{o.cited_outlet}, {o.cited_date}" if o.cited_doc else ""
        lines.append(
            f"| {_cell(o.id)} | {_cell(o.question)} | {_cell(gold)} | {_answer_cell(o)} "
            f"| {_cell(o.top_span)} | {_cell(cited)} "
            f"| {o.best_score:.3f} | {'pass' if o.passed else 'FAIL'} |"
        )
    return lines


def _plot(evaluation: Evaluation, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    default = evaluation.runs[0]
    threshold = evaluation.abstain_threshold

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = [i / 40 for i in range(41)]
    for answerable, label in ((True, "answerable"), (False, "unanswerable")):
        scores = [o.best_score for o in default.outcomes if o.answerable is answerable]
        if scores:
            ax.hist(scores, bins=bins, alpha=0.6, label=f"{label} ({len(scores)})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.2f}")
    ax.set(xlabel="best answer score", ylabel="questions", title=f"Answer scores ({default.mode})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / SCORES_PLOT, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ks = list(range(1, MAX_RANK + 1))
    for run in evaluation.runs:
        line = ax.plot(ks, run.summary.hit_at, marker="o", label=f"{run.mode}: answer in passage")[0]
        ax.plot(
            ks,
            run.summary.source_hit_at,
            linestyle=":",
            color=line.get_color(),
            label=f"{run.mode}: gold source",
        )
    ax.set(xlabel="k (passages)", ylabel="hit@k", ylim=(0, 1.02), xticks=ks, title="Retrieval hit@k")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(folder / HIT_PLOT, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    thresholds = [p.threshold for p in default.sweep]
    series = (
        ("precision", [p.precision for p in default.sweep]),
        ("recall", [p.recall for p in default.sweep]),
        ("false abstention rate", [p.false_abstention_rate for p in default.sweep]),
        ("decision accuracy", [p.accuracy for p in default.sweep]),
    )
    for label, values in series:
        if any(v is not None for v in values):
            ax.plot(thresholds, [float("nan") if v is None else v for v in values], label=label)
    ax.axvline(threshold, color="black", linestyle="--", label=f"current {threshold:.2f}")
    if default.recommended_threshold is not None:
        ax.axvline(
            default.recommended_threshold,
            color="grey",
            linestyle=":",
            label=f"recommended {default.recommended_threshold:.2f}",
        )
    ax.set(xlabel="abstention threshold", ylabel="rate", ylim=(0, 1.02), title="Abstention sweep")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(folder / SWEEP_PLOT, dpi=100)
    plt.close(fig)


def write_report(evaluation: Evaluation, folder: Path) -> Path:
    """Write ``report.md`` and its plots into ``folder`` (created if needed).

    Returns:
        The path of the Markdown report.

    Raises:
        InputError: ``folder`` exists and is not a folder, or cannot be written.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create report folder {folder}: {exc}") from None
    default = evaluation.runs[0]
    summary = default.summary
    recommended = default.recommended_threshold
    lines = [
        f"# Evaluation: {evaluation.name}",
        "",
        f"{summary.questions} questions ({summary.answerable} answerable, "
        f"{summary.unanswerable} unanswerable). Abstention threshold {evaluation.abstain_threshold:.2f}; "
        + (
            f"the sweep recommends {recommended:.2f}."
            if recommended is not None
            else "the sweep recommends none (no unanswerable question in this set)."
        ),
        "",
        "Definitions: docs/evaluation.md. Retrieval, answer and citation figures are over "
        "answerable questions; answer figures score the top answer even where the engine abstains.",
        "",
        "## Metrics by retrieval mode",
        "",
        *_metrics_table(evaluation),
        "",
        "## Plots",
        "",
        f"![answer scores]({SCORES_PLOT})",
        f"![hit@k]({HIT_PLOT})",
        f"![abstention sweep]({SWEEP_PLOT})",
        "",
        *_differences_section(evaluation),
        f"## Questions ({default.mode})",
        "",
        *_question_table(default),
        "",
    ]
    try:
        path = folder / REPORT_FILE
        path.write_text("\n".join(lines), encoding="utf-8")
        _plot(evaluation, folder)
    except OSError as exc:
        raise InputError(f"cannot write the report into {folder}: {exc}") from None
    return path
