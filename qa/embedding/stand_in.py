"""A stand-in encoder for measuring a build's memory at sizes the real model would take hours on.

It makes no embedding: each text gets a unit vector drawn from a generator
seeded by a hash of the text, so the same text always gets the same vector
and the arrays have the real model's shape. Only benchmarks use it
(benchmarks/bench_stream_build.py); its ``model_id`` names it, so output made
with it can never pass for an index of the real model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


class StandInEncoder:
    """Deterministic, hash-seeded unit vectors of a given dimension; an Encoder in shape only."""

    def __init__(self, dimension: int) -> None:
        if dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension}")
        self.dimension = dimension
        self.model_id = stand_in_id(dimension)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """One unit float32 vector a text, the same for the same text in any process."""
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")
            vector = np.random.default_rng(seed).standard_normal(self.dimension, dtype=np.float32)
            vectors[i] = vector / np.linalg.norm(vector)
        return vectors


def stand_in_id(dimension: int) -> str:
    """The model id a build made with the stand-in records."""
    return f"stand-in-hash-{dimension}"
