"""The embedding job on Ray Data (a local Ray of 2 CPUs, started once), against the in-process build."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.embedding.embedder import Embedder
from qa.embedding.ray_job import RayEmbedder, check_reachable, connect, in_input_order
from qa.engine import Engine
from qa.errors import ClusterError
from qa.index.store import load_index
from qa.web.result_json import result_json

ray = pytest.importorskip("ray", reason="the optional extra: pip install 'newsqa[scale]'")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
QUESTIONS = ROOT / "data" / "eval" / "questions.jsonl"



def _texts() -> list[str]:
    # 50 distinct texts of very different lengths: any row out of place changes its vector.
    words = sorted(CORPUS.glob("*.txt"))[0].read_text(encoding="utf-8").split()[:40]
    return [" ".join(words[: 1 + i % len(words)]) + f" (report {i})" for i in range(50)]


def test_encode_equals_in_process_row_for_row(local_ray: None) -> None:
    texts = _texts()
    # 7 rows a block and 8 a batch: 8 blocks over 2 workers, so blocks finish out of order.
    remote = RayEmbedder("local", batch_size=8, workers=2, block_rows=7)
    vectors = remote.encode(texts)
    expected = Embedder(batch_size=8).encode(texts)
    assert vectors.dtype == np.float32 and vectors.shape == expected.shape == (50, remote.dimension)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert remote.model_id == Embedder().model_id


def test_index_built_on_ray_answers_as_the_default_build(
    local_ray: None, engine: Engine, bundled_index: Path, tmp_path: Path
) -> None:
    ray_index = tmp_path / "index"
    built = Engine.open(CORPUS, ray_index, progress=False, ray_address="local")
    assert built.manifest["spec"] == engine.manifest["spec"]
    assert built.manifest["counts"] == engine.manifest["counts"]
    every = np.arange(built.manifest["counts"]["sentences"])
    ours, theirs = (np.asarray(load_index(i).sentence_vectors[every]) for i in (ray_index, bundled_index))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()[:4]]
    for row in rows:
        ours = result_json(built.ask(row["question"]))
        theirs = result_json(engine.ask(row["question"]))
        for result in (ours, theirs):
            del result["latency_ms"]
        assert ours == theirs, row["id"]


def test_unreachable_cluster_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens at: bound, never listening
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        done = subprocess.run(
            [sys.executable, "-m", "qa", "index", "--index", str(tmp_path / "i"), "--ray", address],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
    assert done.returncode == 2, done.stderr
    assert f"qa: error: cannot reach the Ray cluster at '{address}'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "i").exists()


@pytest.mark.parametrize("address", ["ray://head", "head:port", ":10001"])
def test_malformed_address_names_the_allowed_forms(address: str) -> None:
    with pytest.raises(ClusterError, match=r"must be 'local', 'auto', ray://HOST:PORT or HOST:PORT"):
        check_reachable(address)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    with pytest.raises(ClusterError, match=r"pip install 'newsqa\[scale\]'"):
        connect("local")


@given(st.permutations(list(range(20))))
def test_vectors_return_to_input_order_whatever_order_blocks_arrive(arrival: list[int]) -> None:
    rows = np.asarray(arrival, dtype=np.int64)
    vectors = rows.astype(np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    np.testing.assert_array_equal(in_input_order(rows, vectors, 20)[:, 0], np.arange(20))


@pytest.mark.parametrize("rows", [[0, 1, 1], [0, 2], [0, 1]])
def test_a_lost_or_repeated_row_is_an_error(rows: list[int]) -> None:
    vectors = np.zeros((len(rows), 3), dtype=np.float32)
    with pytest.raises(ClusterError, match="not one per text"):
        in_input_order(np.asarray(rows, dtype=np.int64), vectors, 3)
