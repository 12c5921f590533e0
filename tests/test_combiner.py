"""The learned combiner: its features, its file, and that the engine ranks by it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.answer.answers import combiner_for, rank_sentences
from qa.answer.combiner import FEATURES, Read, default_combiner_path, features, load_combiner
from qa.answer.scoring import Candidate
from qa.engine import Engine
from qa.errors import ModelError


def _read(sid: int, evidence: float, logit: float, text: str, dense: float = 0.5, typed: int = 0) -> Read:
    return Read(Candidate(sid, 0, dense, 0.5, 0.4, typed, 0.0), evidence, logit, text)


def test_features_compare_candidates_within_a_question() -> None:
    reads = [
        _read(0, 0.9, -1.0, "Jane Roe said the council would decide.", dense=0.8),
        _read(1, 0.5, 2.0, '"We will not back down," she said.', dense=0.3, typed=1),
        _read(2, 0.7, 0.5, "There was no police presence at the march.", typed=-1),
    ]
    x = features("What did Jane Roe say about the council?", reads)
    assert x.shape == (3, len(FEATURES))
    col = {name: x[:, i] for i, name in enumerate(FEATURES)}
    assert col["reader_gap"].max() == 0.0 and col["reader_gap"][1] == 0.0
    assert col["dense_gap"][0] == 0.0 and col["dense_gap"][1] == pytest.approx(-0.5)
    assert list(col["evidence_gap"]) == pytest.approx([0.0, -0.4, -0.2])
    assert list(col["speech_quote"]) == [0.0, 1.0, 0.0]
    assert list(col["typed_yes"]) == [0.0, 1.0, 0.0] and list(col["typed_no"]) == [0.0, 0.0, 1.0]
    yesno = features("Were police present at the march?", reads)
    assert list(yesno[:, FEATURES.index("yesno_negation")]) == [0.0, 1.0, 1.0]
    assert features("Who?", []).shape == (0, len(FEATURES))


def test_the_shipped_combiner_file_fits_the_features_and_the_shipped_reader() -> None:
    raw = json.loads(default_combiner_path().read_text(encoding="utf-8"))
    assert raw["features"] == list(FEATURES)
    reader_meta = json.loads((Path(default_combiner_path().parent) / "reader" / "reader.json").read_text())
    assert raw["reader_sha256"] == reader_meta["sha256"]
    combiner = load_combiner(default_combiner_path())
    # The reader's score must count for the answer, or the fit went wrong.
    assert combiner.weights[FEATURES.index("reader")] > 0


def test_a_combiner_file_for_other_features_or_damaged_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "combiner.json"
    bad.write_text(json.dumps({"features": ["reader"], "weights": [1.0], "bias": 0.0}), encoding="utf-8")
    with pytest.raises(ModelError, match="other features"):
        load_combiner(bad)
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="unreadable"):
        load_combiner(bad)


def test_the_engine_ranks_by_the_combiner_probability(engine: Engine) -> None:
    reader = engine.reader
    assert reader is not None
    found = engine.retrieval("What did Max Tweedie say about police training?")
    combiner = combiner_for(reader)
    assert combiner is not None
    ranked = rank_sentences(found.data, found.prepared, found.fused, engine.settings, reader, found.outlets)
    assert len(ranked) == engine.settings.reader_candidates
    scores = [s.score for s in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s.score <= 1.0 and 0.0 <= s.confidence <= 1.0 for s in ranked)
    result = engine.ask("What did Max Tweedie say about police training?")
    assert result.answers and result.answers[0].score == pytest.approx(scores[0], abs=1e-4)


def test_a_reader_the_combiner_was_not_fit_on_falls_back_to_the_blend(bundled_index: Path) -> None:
    from qa.answer.reader import Reader

    reader = Reader()
    reader.model  # noqa: B018 - loads and records the sha256
    assert combiner_for(reader) is not None
    reader.sha256 = "0" * 64
    assert combiner_for(reader) is None
    assert np.isfinite(load_combiner(default_combiner_path()).bias)
