"""The reader's training settings: a light module, so the CLI reads their defaults without loading torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the weights; written into ``reader.json``."""

    layers: int = 4
    epochs: int = 2
    # The fresh head and the pooler under it start from nothing: the packaged
    # model was trained with mean pooling, so its [CLS] pooler carries no
    # signal. At one shared rate of 5e-5 the loss had not moved from ln(9)
    # after 33 steps; a 10x rate for head and pooler gets it moving at once.
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-3
    batch_questions: int = 16
    group_size: int = 8
    context_chars: int = 0
    warmup: float = 0.1
    seed: int = 13
    holdout: int | None = None
    folds: int = 2
