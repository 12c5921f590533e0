"""newsqa: extractive, cited question answering over a news archive.

Importing ``qa`` is cheap: torch and the model load only when an engine first
needs to embed text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from qa.engine import Engine

__all__ = ["Engine", "__version__"]


def __getattr__(name: str) -> object:
    if name == "Engine":
        from qa.engine import Engine

        return Engine
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
