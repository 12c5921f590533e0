"""Which value in a sentence is the one a question asks about: the one its words stand around.

A sentence that lists purchases ("a $43,350 gold-plated men's Rolex watch and
$9,587.64 worth of children's furniture") answers "How much did the Rolex watch
cost?" with the price beside "Rolex watch", whatever a reader model makes of the
whole sentence. A value is *in focus* when the question's words around it carry
enough of the question's weight (idf), counting only words within FOCUS_WORDS
of it, a clause break counting CLAUSE_WORDS words. A question that counts a
thing ("how many passengers") wants the figure right beside that thing.

A word of a name the question capitalises counts only with the whole name: the
"buy" of "used campaign money to buy items" is not the "Buy" of "Best Buy".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from qa.index.lexical import LexicalIndex

# How near the question's words must stand to a value, in words.
FOCUS_WORDS = 12
# A clause break between them (", ", ";", a dash, a bracket, "and", "which") counts as this many words.
CLAUSE_WORDS = 5
# The counted thing must stand this close: "312 passengers", "2,350 hectares of forest".
COUNTED_WORDS = 3
# The share of the question's weight that must stand around a value for it to be in focus.
FOCUS_SHARE = 0.35

_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
CLAUSE_BREAK = re.compile(r",\s|;\s*|\s[\u2013\u2014-]+\s|[()]|\s(?:and|but|while|whereas|which)\s")
# The counted thing of "how many passengers", "how many hectares".
_COUNTED = re.compile(r"\bhow (?:many|much)\s+([a-z]+)", re.I)
_NOT_COUNTED = frozenset(
    {"did", "does", "do", "is", "was", "were", "are", "has", "have", "had", "will", "more", "of", "money"}
)
# Words that shape a question but name nothing it is about: they stand near any value.
_FUNCTION_WORDS = (
    "how much many what when where who whom whose which why did does do "
    "is was were are be been has have had will would could should can "
    "the a an of in on at to for with from by that this "
    "these those it its there their they he she his her "
)
# A capitalised name of one or more words ("Best Buy", "Rolex"), after the question's first word.
_NAME = re.compile(r"\b[A-Z][\w'\u2019.-]*(?:\s+[A-Z][\w'\u2019.-]*)*")


@dataclass(frozen=True)
class Focus:
    """The question's words as runs of index terms with their weight; ``counted`` the counted thing."""

    runs: tuple[tuple[tuple[str, ...], float], ...]
    counted: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        return sum(weight for _, weight in self.runs)


def question_focus(
    lexical: LexicalIndex, question: str, terms: Mapping[str, float], used: Iterable[str]
) -> Focus:
    """The focus of ``question``: its terms (``terms``: term -> idf) that the candidates use (``used``)."""
    used = set(used)
    counted = _COUNTED.search(question)
    if counted and counted.group(1).lower() not in _NOT_COUNTED:
        noun = tuple(lexical.terms(counted.group(1)))
        if noun and all(t in used for t in noun):
            return Focus((), noun)
    names = [tuple(lexical.terms(name)) for name in _NAME.findall(question.split(" ", 1)[-1])]
    runs: dict[tuple[str, ...], float] = {}
    function = set(lexical.terms(_FUNCTION_WORDS))
    for term, idf in terms.items():
        if term not in used or idf <= 0 or term in function:
            continue
        run = next((named for named in names if term in named and len(named) > 1), (term,))
        runs[run] = runs.get(run, 0.0) + idf
    return Focus(tuple(runs.items()))


def gap(sentence: str, a: int, b: int) -> int:
    """Words between offsets ``a`` and ``b``, a clause break counting as CLAUSE_WORDS words."""
    between = sentence[min(a, b) : max(a, b)]
    return len(_WORD.findall(between)) + CLAUSE_WORDS * len(CLAUSE_BREAK.findall(between))


def focus_share(
    sentence: str,
    span: tuple[int, int],
    focus: Focus,
    positions: Mapping[tuple[str, ...], list[tuple[int, int]]],
) -> float:
    """The share of the focus that stands around ``span`` (1.0 or 0.0 for a counted thing)."""
    start, end = span

    def distance(place: tuple[int, int]) -> int:
        return gap(sentence, place[1], start) if place[1] <= start else gap(sentence, end, place[0])

    if focus.counted:
        places = positions.get(focus.counted, [])
        return 1.0 if any(distance(p) <= COUNTED_WORDS for p in places) else 0.0
    if focus.total <= 0:
        return 0.0
    near = sum(
        weight
        for run, weight in focus.runs
        if any(distance(p) <= FOCUS_WORDS for p in positions.get(run, []))
    )
    return near / focus.total


def sentence_positions(
    lexical: LexicalIndex, sentence: str, focus: Focus
) -> dict[tuple[str, ...], list[tuple[int, int]]]:
    """Where each run of the focus stands in ``sentence``: (start, end) offsets of its terms in a row."""
    flat = [(m.start(), m.end(), term) for m in _WORD.finditer(sentence) for term in lexical.terms(m.group())]
    terms = [t for _, _, t in flat]
    runs = [focus.counted] if focus.counted else [run for run, _ in focus.runs]
    return {
        run: [
            (flat[i][0], flat[i + len(run) - 1][1])
            for i in range(len(flat) - len(run) + 1)
            if tuple(terms[i : i + len(run)]) == run
        ]
        for run in runs
    }
