"""What the index and training need of an embedding model: one Protocol, so any encoder plugs in.

The in-process :class:`qa.embedding.embedder.Embedder` (torch or ONNX
Runtime) and :class:`qa.embedding.ray_job.RayEmbedder` (a Ray Data job) both
satisfy it; a build, an update or the reader's training data take "something
that encodes" without knowing which.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Encoder(Protocol):
    """Encodes texts into unit vectors with one model, named by ``model_id``."""

    #: The model and backend the vectors come from, as an index manifest records it.
    model_id: str

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, so a dot product is a cosine."""
        ...
