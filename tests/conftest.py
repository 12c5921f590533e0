"""Shared fixtures: one real index of the bundled corpus per test session."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from qa.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"


@pytest.fixture(scope="session")
def bundled_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a real index of the bundled corpus, built once."""
    index_dir = tmp_path_factory.mktemp("bundled") / "index"
    Engine.open(CORPUS, index_dir, progress=False)
    return index_dir


@pytest.fixture(scope="session")
def engine(bundled_index: Path) -> Engine:
    """The engine over the bundled corpus (real model, real FAISS and tantivy)."""
    return Engine.open(CORPUS, bundled_index, progress=False)


@pytest.fixture(scope="session")
def sources() -> dict[str, dict[str, str]]:
    """The bundled sources.csv rows keyed by doc_id."""
    with (CORPUS / "sources.csv").open(encoding="utf-8") as handle:
        return {Path(row["file"]).stem: row for row in csv.DictReader(handle)}
