"""Question preparation: what retrieval needs of a question, worked out once.

The question is cleaned and cut to the settings' limit, and so is each
earlier question of the history, whose count is bounded too (a client sends
both, and a megabyte "earlier question" cost seconds of encoding); a follow-up
("What did he say?") borrows the latest earlier question, in both its query
vector and its BM25 terms; each of its own index terms gets an idf weight,
which answer choice reuses for term coverage.

Whether a question is a follow-up is measured, not matched: it must leave a
pronoun or role unresolved (or be a fragment such as "For how long?"), and
the earlier question must fit (is_follow_up); a standalone question asked
after an unrelated one is, unless taken for a follow-up, prepared exactly as if asked alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qa.embedding.encoder import Encoder
from qa.errors import InputError
from qa.index.lexical import LexicalIndex, idf
from qa.settings import MAX_HISTORY_QUESTIONS


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Whether a question is a follow-up of the latest question in the history is
# decided by follow_up_threshold and is_follow_up below, measured by
# benchmarks/follow_up.py on the training questions (data/train, never
# data/eval): their follow-ups, and their standalone questions each asked after
# a question about another article and after fixed unrelated openers.
_WORD = re.compile(r"\w[\w'\u2019.-]*\w|\w")
_WH = _word_set("what which who whom whose when where why how")
_AUX = _word_set(
    "do does did is are was were be been being has have had will would can could should shall may might must "
    "don't doesn't didn't isn't aren't wasn't weren't hasn't haven't hadn't won't wouldn't can't couldn't "
    "shouldn't"
)
_PREPOSITIONS = _word_set(
    "near in of at on for from after before since during about with by to into over under between until till "
    "than as per through across against without within around like"
)
_PERSONAL = _word_set("he she they it him them")
_POSSESSIVE = _word_set("his its their hers theirs")
_DEMONSTRATIVE = _word_set("this that these those")
_REFERRING = _PERSONAL | _POSSESSIVE | _DEMONSTRATIVE | {"her"}
# Words that say what kind of question it is, not what it is about ("What did he say?" is about nothing).
_FUNCTION = (
    _WH
    | _AUX
    | _PREPOSITIONS
    | _REFERRING
    | _word_set(
        "the a an any some each every all many much more most few other another no not and or but so if "
        "whether also still now then there else ever yet again i you we us our one ones "
        "say said says saying tell told tells according"
    )
)
# "the director" refers back unless the question says whose ("the director of X", "the director Ann Lee").
_ROLES = _word_set("man woman couple pair director commissioner officer")
_ROLE_BOUND = _word_set("of at for who whose in with")
# "those who...", "those of...": people or things in general, not ones named earlier.
_THOSE_GENERAL = _word_set("who which that of on with in entitled")
# "How much did it cost to ...": "it" stands for what follows, not for anything earlier.
_DUMMY_IT = _word_set("cost costs take takes took be is was been get got")
# A pronoun after one of these, with a noun before, is bound inside the question
# ("How old was the winner when he took the prize?").
_CLAUSE = _word_set(
    "when while before after because if once until since as who which that whose where whom say said says "
    "saying think thinks"
)
# Words that leave something out for the conversation to fill in ("What else...", "the most common ones").
_ELLIPSIS_ANYWHERE = _word_set("else ones")
_ELLIPSIS_LAST = _word_set("then instead")
# A question that refers back is a follow-up of the previous question when it
# has at most SHORT_QUESTION content words of its own ("How much will it cost?"),
# when the previous one asked "who" or "which" (and so named someone or something
# to refer to), or when the cosine of their unit vectors is at least NEAR_COSINE.
# Measured on the training questions (benchmarks/follow_up.py: 408 follow-ups;
# 27,095 pairs of a standalone question after an unrelated one), as share of the
# follow-ups found / share of the standalone questions taken for follow-ups:
#   NEAR_COSINE 0.1: 0.909 / 0.96%, 0.15: 0.909 / 0.78%, 0.2: 0.907 / 0.64%,
#   0.25: 0.897 / 0.54%, 0.3: 0.892 / 0.47%;
#   SHORT_QUESTION 0: 0.887 / 0.61%, 1: 0.899 / 0.61%, 2: 0.907 / 0.64%, 3: 0.914 / 0.76%.
# (The old regex alone: 0.877 / 13.05%.)
SHORT_QUESTION = 2
NEAR_COSINE = 0.2
# A question with no referring word and no name of its own ("What will the grant
# pay for?") is a follow-up only if it shares a rare content term (idf at least
# RARE_IDF: in about 1 passage in 20 or fewer) with the previous question and
# their cosine is at least SHARED_COSINE. Measured as above: without this rule
# 0.882 / 0.54%; SHARED_COSINE 0.3: 0.907 / 0.65%, 0.35: 0.907 / 0.64%,
# 0.4: 0.897 / 0.63%; RARE_IDF 2.5: 0.909 / 0.68%, 3.5: 0.895 / 0.62%.
RARE_IDF = 3.0
SHARED_COSINE = 0.35
# Half of a surrogate pair alone is not a character: it reaches a question from
# a command line that was not UTF-8, and the tokenizer and JSON output reject it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# How much the previous question counts in a follow-up's query vector and
# BM25 terms: enough to pull in its subject, less than the question itself.
HISTORY_WEIGHT = 0.6


@dataclass(frozen=True)
class PreparedQuestion:
    """A question ready for retrieval and answer choice.

    ``terms`` are the question's own index terms with their idf;
    ``weighted_terms`` the BM25 query, the earlier question's terms included
    at HISTORY_WEIGHT for a follow-up.
    """

    text: str
    previous: str | None
    vector: np.ndarray
    terms: dict[str, float]
    weighted_terms: tuple[tuple[str, float], ...]
    notices: tuple[str, ...] = ()


def _one_line(text: str, limit: int) -> tuple[str, bool]:
    """``text`` on one line (lone surrogates replaced), cut at a word to ``limit`` characters; and if cut."""
    text = " ".join(_LONE_SURROGATE.sub("\ufffd", text).split())
    if len(text) <= limit:
        return text, False
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit], True


def clean_question(question: object, limit: int) -> tuple[str, list[str]]:
    """The question on one line, cut at a word to at most ``limit`` characters, and a notice if cut.

    Raises:
        InputError: the question is not text, or is blank.
    """
    if question is not None and not isinstance(question, str):
        raise InputError(f"the question must be text, got {shown_value(question)}")
    question, cut = _one_line(question or "", limit)
    if not question:
        raise InputError("the question is empty: type a question about the news archive")
    if not cut:
        return question, []
    return question, [f"question was longer than {limit} characters and was cut to its first {len(question)}"]


def clean_history(history: object, limit: int) -> tuple[list[str], list[str]]:
    """The last MAX_HISTORY_QUESTIONS earlier questions, blanks dropped, each cleaned and cut like a question.

    Returns:
        The questions, oldest first, and a notice for each kind of cut made.

    Raises:
        InputError: ``history`` is not a list of texts.
    """
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise InputError(f"history must be a list of earlier questions, got {shown_value(history)}")
    wrong = next((h for h in history if not isinstance(h, str)), None)
    if wrong is not None:
        raise InputError(f"history must be a list of earlier questions (texts), got {shown_value(wrong)}")
    notices = []
    if len(history) > MAX_HISTORY_QUESTIONS:
        notices.append(f"history had {len(history)} entries; only the last {MAX_HISTORY_QUESTIONS} were read")
    kept, cut = [], 0
    for entry in history[-MAX_HISTORY_QUESTIONS:]:
        text, was_cut = _one_line(entry, limit)
        cut += was_cut
        if text:
            kept.append(text)
    if cut:
        were = "earlier question in the history was" if cut == 1 else "earlier questions in the history were"
        notices.append(f"{cut} {were} longer than {limit} characters and was cut")
    return kept, notices


def shown_value(value: object) -> str:
    """A value a caller sent, its repr cut to 60 characters, for an error message (it can be a megabyte)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:56] + "..." + text[-1]


def _words(text: str) -> tuple[list[str], list[str]]:
    """The words of ``text`` as written and lower-cased (with a plain apostrophe)."""
    written = _WORD.findall(text)
    return written, [w.lower().replace("\u2019", "'") for w in written]


def _is_content(word: str) -> bool:
    """A lower-cased word that says what a question is about (not a function word or a number)."""
    return word not in _FUNCTION and not word.isdigit()


def _object_wh_end(lower: Sequence[str]) -> int:
    """Where a leading "how many visits" / "which village" phrase ends, when an auxiliary follows it.

    Such a phrase asks for the object or a circumstance, so a pronoun after it
    cannot stand for it ("How many medicines does he take?"); a subject phrase
    ("Which director is withdrawing her film?") can bind one, so 0 for it.
    """
    i = 0
    while i < len(lower) and lower[i] in _PREPOSITIONS:
        i += 1
    if i < len(lower) and lower[i] in _WH:
        end = next((j for j in range(i + 1, len(lower)) if lower[j] in _AUX), 0)
        return end
    return 0


def _demonstrative_refers_back(lower: Sequence[str], i: int, subject: bool) -> bool:
    """Whether this/that/these/those at ``lower[i]`` points into the conversation."""
    word, before = lower[i], lower[i - 1] if i else ""
    after = lower[i + 1] if i + 1 < len(lower) else ""
    if word in ("this", "these"):  # "this year", "boats like this one": the article's own
        return subject or not (_is_content(after) or before == "like")
    if word == "that":  # "the union that called", "said that", "so that": a relative or a conjunction
        return not (i and (_is_content(before) or before == "so"))
    return not (after in _THOSE_GENERAL or before == "than")


def _refers_back(written: Sequence[str], lower: Sequence[str], i: int, wh_end: int) -> bool:
    """Whether the pronoun or demonstrative ``lower[i]`` is left to the conversation to resolve."""
    word, before = lower[i], lower[i - 1] if i else ""
    after = lower[i + 1] if i + 1 < len(lower) else ""
    subject = wh_end > 0 and i == wh_end + 1  # "What did he say": nothing before it to stand for
    if word in _DEMONSTRATIVE:
        return _demonstrative_refers_back(lower, i, subject)
    if word == "it" and (
        (after in _DUMMY_IT and "to" in lower[i + 2 :]) or (i == 1 and before in ("is", "was"))
    ):
        return False
    if subject:
        return True
    if any(w[:1].isupper() and w != "I" for w in written[1:]):
        return False  # a name in the question it can stand for
    if word in _POSSESSIVE or (word == "her" and _is_content(after)):
        return not any(_is_content(w) for w in lower[wh_end:i])
    nouns = [k for k in range(wh_end, i) if _is_content(lower[k])]
    return not any(
        lower[k] in _CLAUSE or (lower[k].endswith("ing") and lower[k] != "according")
        for k in range(nouns[0] + 1 if nouns else i, i)
    )


def referring_words(question: str) -> list[str]:
    """The pronouns, demonstratives and roles ("the director") that ``question`` does not resolve itself.

    "What did he say?" leaves "he" to the conversation; in "How much will the
    scheme cost in its first year?", "Who is the director of Auckland Pride?"
    or "What did Ann Lee say about her plan?" the question itself says who or
    what is meant.
    """
    written, lower = _words(question)
    wh_end = _object_wh_end(lower)
    found = []
    for i, word in enumerate(lower):
        if word == "the" and i + 1 < len(lower) and lower[i + 1] in _ROLES:
            then = written[i + 2] if i + 2 < len(written) else ""
            if not (then.lower() in _ROLE_BOUND or then[:1].isupper() or then.endswith("ed")):
                found.append(f"the {lower[i + 1]}")
        elif word in _REFERRING and _refers_back(written, lower, i, wh_end):
            found.append(word)
    return found


def _is_fragment(lower: Sequence[str]) -> bool:
    """A question that only makes sense after another: "For how long?", "And in 2018?", "Why?"."""
    if not lower or lower[0] == "and" or not any(_is_content(w) for w in lower):
        return True
    return lower[0] in _PREPOSITIONS and len(lower) <= 6 and not _AUX.intersection(lower)


def _demonstrative_subject(lower: Sequence[str]) -> bool:
    """ "How did that compare...?", "Why was that figure chosen?": what the question is about was said before.

    In the training questions 6 of the 7 with such a subject were follow-ups.
    """
    wh_end = _object_wh_end(lower)
    return wh_end > 0 and wh_end + 1 < len(lower) and lower[wh_end + 1] in _DEMONSTRATIVE


def _asks_who_or_which(question: str) -> bool:
    """Whether ``question`` asks to name someone or something ("Who chairs...", "In which town...")."""
    lower = _words(question)[1]
    i = 0
    while i < len(lower) and lower[i] in _PREPOSITIONS:
        i += 1
    return i < len(lower) and lower[i] in ("who", "whom", "whose", "which")


def content_terms(text: str, lexical: LexicalIndex) -> set[str]:
    """The index terms of the content words of ``text`` (no "how", "did", "say"-like function words)."""
    return {t for w in _words(text)[1] if _is_content(w) for t in lexical.terms(w)}


def shared_rare_idf(question: str, previous: str, lexical: LexicalIndex, num_passages: int) -> float:
    """The highest idf of a content term the two questions share (0.0 when they share none)."""
    shared = content_terms(question, lexical) & content_terms(previous, lexical)
    return max((idf(lexical.doc_freq(t), num_passages) for t in shared), default=0.0)


def follow_up_threshold(
    question: str,
    previous: str,
    shared_idf: float,
    near: float = NEAR_COSINE,
    shared: float = SHARED_COSINE,
    rare_idf: float = RARE_IDF,
    short: int = SHORT_QUESTION,
) -> float:
    """The cosine ``question``'s vector needs to ``previous``'s for it to be a follow-up of it.

    ``-inf``: always one (a fragment such as "For how long?"; a question that
    refers back and is short, or has "that" as its subject, or comes after one
    that asked "who" or "which");
    ``inf``: never (nothing in it refers back, and it shares no rare term with
    ``previous``). The keyword arguments are the thresholds (module constants),
    for benchmarks/follow_up.py to sweep.
    """
    written, lower = _words(question)
    if _is_fragment(lower):
        return -math.inf
    ellipsis = bool(_ELLIPSIS_ANYWHERE.intersection(lower)) or lower[-1] in _ELLIPSIS_LAST
    if ellipsis or referring_words(question):
        own = sum(_is_content(w) for w in lower)
        sure = own <= short or _demonstrative_subject(lower) or _asks_who_or_which(previous)
        return -math.inf if sure else near
    named = any(w[:1].isupper() and w != "I" for w in written[1:])
    return shared if shared_idf >= rare_idf and not named else math.inf


def is_follow_up(
    question: str,
    previous: str,
    question_vector: np.ndarray,
    previous_vector: np.ndarray,
    shared_idf: float,
) -> bool:
    """Whether ``question`` leans on ``previous``: it refers back (or is a fragment) and ``previous`` fits.

    The vectors are unit length (Encoder.encode); ``shared_idf`` is
    shared_rare_idf of the two questions. Why not the regex on "he", "it",
    "the director"... used before: on the training questions it took 13% of
    standalone questions asked after an unrelated one for follow-ups, and
    blended them with it ("Who is the director of Auckland Pride?" holds "the
    director"); this rule takes 0.64% (173 of 27,095 pairs) and finds 370 of
    the 408 follow-ups (the regex: 358); benchmarks/results/follow_up.json.
    """
    threshold = follow_up_threshold(question, previous, shared_idf)
    return threshold == -math.inf or float(np.dot(question_vector, previous_vector)) >= threshold


def _lean_on(
    text: str,
    previous: str,
    vector: np.ndarray,
    encoder: Encoder,
    lexical: LexicalIndex,
    num_passages: int,
) -> tuple[str | None, np.ndarray]:
    """``previous`` and the blended vector if ``text`` is a follow-up of it, else None and ``vector``.

    ``previous`` is encoded only when the decision or the blend needs it.
    """
    shared_idf = shared_rare_idf(text, previous, lexical, num_passages)
    if follow_up_threshold(text, previous, shared_idf) == math.inf:
        return None, vector
    previous_vector = encoder.encode([previous])[0]
    if not is_follow_up(text, previous, vector, previous_vector, shared_idf):
        return None, vector
    blended = vector + HISTORY_WEIGHT * previous_vector
    return previous, blended / np.linalg.norm(blended)


def prepare_question(
    question: object,
    history: Sequence[object],
    encoder: Encoder,
    lexical: LexicalIndex,
    num_passages: int,
    max_chars: int,
) -> PreparedQuestion:
    """Clean ``question`` and ``history``, find the earlier question it refers to, build its vector and terms.

    Only the latest earlier question can be referred to, and only when
    is_follow_up says the question leans on it; a standalone question after an
    unrelated one gets the vector and terms it would get alone.

    Raises:
        InputError: the question is not text, or is blank; the history is not a list of texts.
    """
    text, notices = clean_question(question, max_chars)
    earlier, history_notices = clean_history(history, max_chars)
    vector = encoder.encode([text])[0]  # alone, so a standalone question's vector is exactly its own
    previous = None
    if earlier:
        previous, vector = _lean_on(text, earlier[-1], vector, encoder, lexical, num_passages)
    terms = {t: idf(lexical.doc_freq(t), num_passages) for t in lexical.terms(text)}
    weighted = [(t, 1.0) for t in terms]
    if previous:
        weighted += [(t, HISTORY_WEIGHT) for t in lexical.terms(previous)]
    return PreparedQuestion(text, previous, vector, terms, tuple(weighted), (*notices, *history_notices))
