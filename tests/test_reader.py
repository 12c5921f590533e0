"""The reader: input shaping, score blending, the shipped weights and their checks, any CrossEncoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qa.answer import reader as reader_module
from qa.answer.reader import (
    CONTEXT_CHARS,
    DEFAULT_READER,
    READER_META,
    WEIGHTS_FILE,
    Reader,
    default_reader_dir,
    reader_candidate,
    reader_question,
    rerank,
    sigmoid,
)
from qa.answer.scoring import Candidate, ScoredSentence
from qa.checksum import file_sha256
from qa.engine import Engine
from qa.errors import ModelError

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"


def _scored(sid: int, score: float) -> ScoredSentence:
    return ScoredSentence(Candidate(sid, 0, 0.0, 0.0, 0.0, 0, 0.0), score, score)


def test_candidate_comes_before_its_context_and_context_is_cut() -> None:
    assert reader_candidate("It sank.", "") == "It sank."
    assert reader_candidate("It sank.", "The ferry left at noon.") == "It sank. [SEP] The ferry left at noon."
    long_before = "x" * (CONTEXT_CHARS + 50)
    assert reader_candidate("It sank.", long_before) == "It sank. [SEP] " + "x" * CONTEXT_CHARS
    assert reader_candidate("It sank.", "The ferry left at noon.", context_chars=0) == "It sank."
    assert reader_candidate("It sank.", "The ferry left.", context_chars=3) == "It sank. [SEP] The"


def test_follow_up_carries_the_question_it_refers_to() -> None:
    assert reader_question("What did she say?") == "What did she say?"
    joined = reader_question("What did she say?", "Who runs the mill?")
    assert joined == "Who runs the mill? What did she say?"


def test_rerank_blends_reader_probability_with_evidence() -> None:
    # Evidence prefers sentence 1 (0.5 vs 0.4); the reader prefers sentence 2:
    # logit 0 -> p 0.5, logit 2 -> p 0.8808. With reader weight 0.7:
    # s1 = 0.7*0.5 + 0.3*0.5 = 0.5; s2 = 0.7*0.8808 + 0.3*0.4 = 0.7366.
    out = rerank([_scored(1, 0.5), _scored(2, 0.4)], [0.0, 2.0], 0.7)
    assert [s.sentence_id for s in out] == [2, 1]
    assert out[0].score == pytest.approx(0.7366, abs=1e-4)
    assert out[1].score == pytest.approx(0.5)
    # The confidence is the reader's probability alone.
    assert [s.confidence for s in out] == pytest.approx([0.8808, 0.5], abs=1e-4)
    # Weight 0 keeps the evidence order and scores; the reader still sets the confidence.
    same = rerank([_scored(1, 0.5), _scored(2, 0.4)], [0.0, 2.0], 0.0)
    assert [(s.sentence_id, s.score) for s in same] == [(1, 0.5), (2, 0.4)]
    assert same[1].confidence == pytest.approx(0.8808, abs=1e-4)


def test_sigmoid_is_stable_at_the_extremes() -> None:
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_shipped_reader_matches_its_recorded_checksum_and_size() -> None:
    folder = default_reader_dir()
    meta = json.loads((folder / READER_META).read_text(encoding="utf-8"))
    assert file_sha256(folder / WEIGHTS_FILE) == meta["sha256"]
    assert (folder / WEIGHTS_FILE).stat().st_size <= 30 * 1024 * 1024


@pytest.fixture(scope="module")
def shipped() -> Reader:
    return Reader()


def test_shipped_reader_prefers_the_answer_over_a_restatement(shipped: Reader) -> None:
    question = "How many goals did Ana Ruiz score in the cup final?"
    context = shipped.context_chars
    candidates = [
        reader_candidate("Ana Ruiz has long been known as a prolific scorer in cup finals.", "", context),
        reader_candidate("Ruiz scored three goals in the second half.", "Porto Verde won 4-1.", context),
        reader_candidate("The stadium was sold out for the first time since 2011.", "", context),
    ]
    logits = shipped.logits(question, candidates)
    assert logits.shape == (3,)
    assert int(np.argmax(logits)) == 1


def test_a_reader_file_with_a_changed_byte_is_refused_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "reader"
    shutil.copytree(default_reader_dir(), folder)
    weights = folder / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"corrupt: sha256") as info:
        Reader(str(folder)).model  # noqa: B018
    assert str(weights) in str(info.value)


def test_a_missing_reader_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "reader"
    shutil.copytree(default_reader_dir(), folder)
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelError, match="reader file missing") as info:
        Reader(str(folder)).model  # noqa: B018
    assert WEIGHTS_FILE in str(info.value)


def test_engine_falls_back_to_evidence_ranking_when_the_shipped_reader_is_missing(
    bundled_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_module, "default_reader_dir", lambda: tmp_path / "nowhere")
    engine = Engine.open(CORPUS, bundled_index, progress=False)
    assert engine.reader is None
    assert any("reader file missing" in n and "without the reader" in n for n in engine.notices)
    result = engine.ask("Who is the director of Auckland Pride?")
    assert "Max Tweedie" in result.answers[0].text


def test_a_named_reader_that_cannot_load_stops_the_engine(bundled_index: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot load reader"):
        Engine.open(CORPUS, bundled_index, progress=False, reader=str(tmp_path / "no-such-reader"))


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer BERT cross-encoder built here, saved as a plain Hugging Face folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from qa.embedding.packaged import DEFAULT_MODEL, resolve_model_location

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_location(DEFAULT_MODEL))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    folder = tmp_path_factory.mktemp("tiny") / "cross-encoder"
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_any_local_cross_encoder_can_be_the_reader(bundled_index: Path, tiny_cross_encoder: Path) -> None:
    engine = Engine.open(CORPUS, bundled_index, progress=False, reader=str(tiny_cross_encoder))
    assert engine.reader is not None and engine.reader.reader_id == str(tiny_cross_encoder.resolve())
    view = engine.with_settings(abstain_threshold=0.0)
    result = view.ask("Who is the director of Auckland Pride?")
    assert result.answers
    for answer in result.answers:
        for c in answer.citations:
            assert engine.article(c.doc_id).body[c.start : c.end] == c.text
    # Its scores are its own: a random tiny model does not score like the shipped one.
    logits = engine.reader.logits("Who?", ["Max Tweedie.", "Nobody."])
    assert logits.shape == (2,) and np.isfinite(logits).all()


def test_reader_none_ranks_by_evidence_alone(bundled_index: Path) -> None:
    engine = Engine.open(CORPUS, bundled_index, progress=False, reader="none")
    assert engine.reader is None and not engine.reads
    assert engine.threshold == engine.settings.evidence_abstain_threshold


def test_a_build_only_open_records_the_reader_without_loading_it(bundled_index: Path) -> None:
    """``qa index`` opens with load_reader=False: the manifest names the reader, no model is read."""
    engine = Engine.open(CORPUS, bundled_index, progress=False, load_reader=False)
    assert engine.reader is None and not engine.reads
    assert engine.manifest["reader"]["id"] == DEFAULT_READER
    assert engine.threshold == engine.settings.evidence_abstain_threshold
