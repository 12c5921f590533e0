"""Defaults in one place; every keyword left as ``None`` elsewhere means "use these".

The numbers were chosen on the dev set (``data/eval/questions.jsonl``); the
docs/evaluation.md's "Tuning" section gives the measurements behind each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_CORPUS = Path("data/corpus")
DEFAULT_INDEX = Path("index")
# The Milvus collection of passages (qa.retrieval.milvus), and the environment variable
# a Milvus server's token is read from: never the command line, which other
# local users can read.
DEFAULT_COLLECTION = "newsqa_passages"
MILVUS_TOKEN_ENV = "NEWSQA_MILVUS_TOKEN"

# Articles per shard when a streaming build (qa build-shards) cuts one archive
# file or folder into shards: a shard is the unit that is redone after a kill,
# so a small one loses little (1,000 articles embed in about 10 minutes on one
# core), and the driver holds one shard's bookkeeping at a time, not its texts.
DEFAULT_SHARD_ARTICLES = 1_000

# Bounds on what a caller (a web client above all) controls the size of, so
# that no request costs more than an ordinary one. Each earlier question of a
# history is also cut to Settings.max_question_chars, like the question.
# A follow-up reads only the latest earlier question, so a conversation needs
# few; 50 is more than any chat keeps, and the rest are dropped with a notice.
MAX_HISTORY_QUESTIONS = 50
# Outlets one filter may name: far beyond what a person picks, and it keeps
# the filter check and its error message small.
MAX_FILTER_OUTLETS = 100
# Answers one question may ask for: answers come from the sentences of
# Settings.answer_passages passages (8 of about 3 sentences), so more than 50
# is never filled.
MAX_TOP_K = 50


@dataclass(frozen=True)
class Weights:
    """How the evidence for an answer sentence adds up (see qa.answer.scoring.Candidate).

    Chosen by a grid search on the dev set (docs/evaluation.md, "Tuning"): the embedding
    similarity carries paraphrases, the idf-weighted term overlap rewards the
    rare words a question names, the passage's fused retrieval score lends
    context a lone sentence lacks, and the answer-type and named-source terms
    break near-ties between an answer and a sentence that only echoes the
    question. The answer-type weight was raised from 0.04 to 0.06 when "how
    old/far/long/much" got kinds of their own (docs/evaluation.md, "Answer kinds").
    """

    dense: float = 0.70
    lexical: float = 0.20
    passage: float = 0.10
    typed: float = 0.06
    source: float = 0.10


@dataclass(frozen=True)
class Settings:
    """Engine configuration. Index-shaping fields are recorded in the manifest."""

    # Passages: windows of whole sentences. 3 sentences with a stride of 2
    # (neighbouring passages share a sentence) gave the best passage hit@1 on
    # the dev set: 0.778, against 0.711 for 4/2, 0.733 for 3/1, 0.533 for
    # single sentences (docs/evaluation.md, "Tuning").
    sentences_per_passage: int = 3
    passage_stride: int = 2
    # Which retrievers run: "hybrid" fuses both; the others are for ablations.
    retrieval: Literal["hybrid", "dense", "bm25"] = "hybrid"
    # Candidates each retriever returns before fusion.
    retrieve_depth: int = 50
    # Fusion of the dense and BM25 runs. "blend" (each run's scores scaled by
    # its best, 0.6 dense / 0.4 BM25) beat reciprocal rank fusion on both
    # evaluation sets: dev MRR@10 0.852 vs 0.831, XQuAD paragraph hit@1 0.950
    # vs 0.935 (docs/evaluation.md, "Tuning"). "rrf" remains for corpora where BM25 and
    # cosine scores are badly matched; k=60 is Cormack et al.'s (2009) value.
    fusion: Literal["rrf", "blend"] = "blend"
    dense_weight: float = 0.6
    rrf_k: int = 60
    # How many fused passages answer extraction reads sentences from.
    answer_passages: int = 8
    # Passages returned with a result (shown as "sources").
    passages_shown: int = 5
    top_k: int = 3
    weights: Weights = field(default_factory=Weights)
    # The reader (qa.answer.reader) reads this many of the best candidates by
    # evidence (0: none), and the combiner (qa.answer.combiner) ranks them by
    # the reader's score and the evidence together. Both the count and the
    # combiner's weights were chosen on 1,456 held-out training questions,
    # cross-validated by event group (docs/evaluation.md, "Answer choice"):
    # 12 candidates gave top-1 .770 / top-3 .879 against .765 / .862 for 8 and
    # .742 / .830 for 5; the old hand-set blend (reader weight 0.1 over 5, tuned
    # on the 45 dev questions) gave .635 / .801. ``reader_weight`` blends only
    # for a reader the shipped combiner was not fit on.
    reader_candidates: int = 12
    reader_weight: float = 0.1
    # An answer whose confidence is below this is not given. With a reader the
    # confidence is the reader's probability. Chosen on the held-out validation
    # (docs/evaluation.md, "Answer choice"): the highest threshold that wrongly
    # abstains on at most 3% of the 1,456 answerable questions; it abstains on
    # 49.6% of the 224 near-miss unanswerable ones (issue 15 asks 70%; the
    # first reader abstained on 26% at the same rate). The dev-tuned 0.76 of the
    # first reader wrongly abstains on 4.6% here. The second applies to
    # evidence scores when no reader runs (--reader none, or no reader file).
    abstain_threshold: float = 0.64
    evidence_abstain_threshold: float = 0.42
    # Sentences whose embeddings are this close count as the same report.
    same_report_cosine: float = 0.88
    # Where outlets differ (qa.answer.differences): two answering sentences this
    # close are about the same fact; two articles whose openings are this close
    # (and name someone or somewhere in common) tell the same event. Chosen on
    # the development set data/train/differences (docs/evaluation.md, "Where
    # outlets differ"): 0.4 to 0.6 changed one question of 71.
    same_fact_cosine: float = 0.5
    same_event_cosine: float = 0.5
    max_question_chars: int = 500
    # How often an open engine (qa serve, a program holding one) looks for a
    # newer index in its folder (qa.index.live): one stat of manifest.json, so
    # checking often costs nothing; what it bounds is how long answers still
    # come from the index an update replaced. 2 s is well under the time an
    # update itself takes, and a reload then costs what loading the index does.
    index_poll_seconds: float = 2.0
    batch_size: int = 64
