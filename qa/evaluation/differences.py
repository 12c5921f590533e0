"""Scoring "where outlets differ" against a question file's optional ``differences`` gold.

A question may carry ``"differences": [{"kind": "money", "values": [{"text": "$43,350",
"doc_id": "..."}, ...]}]``, or ``[]`` to say its outlets agree (or only one gives
the value). Questions without the field are not counted.

A reported difference is correct when it matches a gold difference of its
question: every reported value's text overlaps its article's gold value (or,
for an article the gold does not list, any gold value), and the reported values
name at least two unlike gold values. Precision is over the differences reported on
questions that carry the field, recall over the gold differences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qa.errors import InputError
from qa.records import Difference


@dataclass(frozen=True)
class GoldValue:
    text: str
    doc_id: str


@dataclass(frozen=True)
class GoldDifference:
    """What a person marked: the values articles give for the asked fact (two or more unlike ones)."""

    kind: str
    values: tuple[GoldValue, ...]


@dataclass(frozen=True)
class DifferenceOutcome:
    """One question's reported and gold differences, and which reported ones are right."""

    id: str
    question: str
    gold: tuple[GoldDifference, ...]
    reported: tuple[Difference, ...]
    correct: tuple[bool, ...]  # one flag per reported difference
    found: int  # gold differences matched by a reported one


@dataclass(frozen=True)
class DifferenceScore:
    """Precision and recall of difference detection; None where nothing was reported or labelled."""

    questions: int
    reported: int
    correct: int
    gold: int
    found: int
    outcomes: tuple[DifferenceOutcome, ...]

    @property
    def precision(self) -> float | None:
        return self.correct / self.reported if self.reported else None

    @property
    def recall(self) -> float | None:
        return self.found / self.gold if self.gold else None


def parse_gold(value: object) -> tuple[GoldDifference, ...] | None:
    """The ``differences`` field of a question line; None when absent. Raises InputError when malformed."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InputError(f"'differences' must be a list, got {value!r}")
    golds = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
            raise InputError(f"each difference needs a 'kind' string, got {item!r}")
        values = item.get("values")
        if not isinstance(values, list) or len(values) < 2:
            raise InputError(f"a difference needs at least two 'values', got {values!r}")
        parsed = []
        for v in values:
            if not isinstance(v, dict) or not all(isinstance(v.get(k), str) for k in ("text", "doc_id")):
                raise InputError(f"each difference value needs 'text' and 'doc_id' strings, got {v!r}")
            parsed.append(GoldValue(v["text"], v["doc_id"]))
        golds.append(GoldDifference(item["kind"], tuple(parsed)))
    return tuple(golds)


def _overlaps(reported: str, gold: str) -> bool:
    a, b = reported.lower(), gold.lower()
    return a in b or b in a


def matches(reported: Difference, gold: GoldDifference) -> bool:
    """Whether ``reported`` is the difference ``gold`` describes (see the module docstring)."""
    docs = {g.doc_id for g in gold.values}
    named = set()
    for value in reported.values:
        # An article the gold does not list may still give one of its values (a third outlet agreeing).
        fits = [g for g in gold.values if (g.doc_id == value.doc_id or value.doc_id not in docs)]
        hit = next((g for g in fits if _overlaps(value.text, g.text)), None)
        if hit is None:
            return False
        named.add(hit.text.lower())
    return len(named) >= 2


def score_question(
    item_id: str, question: str, gold: Sequence[GoldDifference], reported: Sequence[Difference]
) -> DifferenceOutcome:
    correct = tuple(any(matches(r, g) for g in gold) for r in reported)
    found = sum(any(matches(r, g) for r in reported) for g in gold)
    return DifferenceOutcome(item_id, question, tuple(gold), tuple(reported), correct, found)


def summarize_differences(outcomes: Sequence[DifferenceOutcome]) -> DifferenceScore:
    return DifferenceScore(
        questions=len(outcomes),
        reported=sum(len(o.reported) for o in outcomes),
        correct=sum(sum(o.correct) for o in outcomes),
        gold=sum(len(o.gold) for o in outcomes),
        found=sum(o.found for o in outcomes),
        outcomes=tuple(outcomes),
    )


def difference_score_json(score: DifferenceScore) -> dict[str, Any]:
    return {
        "questions": score.questions,
        "reported": score.reported,
        "correct": score.correct,
        "gold": score.gold,
        "found": score.found,
        "precision": None if score.precision is None else round(score.precision, 4),
        "recall": None if score.recall is None else round(score.recall, 4),
    }
