"""Any question at all gets a well-formed result or a clear error, never a traceback.

Hypothesis sends arbitrary unicode (control characters, lone surrogates, mixed
scripts, markup, 20,000 characters) through ``Engine.ask`` and, as bytes on a
command line, through ``qa ask --json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qa.engine import Engine
from qa.errors import InputError
from qa.web.result_json import result_json

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"

_MARKUP = st.sampled_from(
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "</textarea><b>bold</b>",
        "[link](javascript:alert(1))",
        "&lt;&amp;&#0;",
        "{{7*7}} ${7*7}",
    ]
)
_WORDS = st.sampled_from(
    ["Who", "police", "Auckland", "Pride", "director", "Wellington", "нападение", "警察", "مدير", "?", "😀"]
)
QUESTIONS = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Cs", "Co"]), max_size=50),
    st.lists(st.one_of(_WORDS, _MARKUP, st.text(max_size=5)), max_size=30).map(" ".join),
    st.text(min_size=1, max_size=40).map(lambda s: (s * (20_000 // len(s) + 1))[:20_000]),
)


def _check(engine: Engine, out: dict) -> None:
    """The documented JSON shape, and every answer verbatim in its cited article."""
    assert set(out) >= {"question", "abstained", "answers", "passages", "latency_ms"}
    assert out["abstained"] == (out["answers"] == [])
    for answer in out["answers"]:
        assert 0.0 <= answer["score"] <= 1.0
        for citation in answer["citations"]:
            body = engine.article(citation["doc_id"]).body
            assert body[citation["start"] : citation["end"]] == citation["text"]
        assert answer["text"] == answer["citations"][0]["text"]
    for passage in out["passages"]:
        assert engine.article(passage["doc_id"]).body[passage["start"] : passage["end"]] == passage["text"]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(question=QUESTIONS)
@example("\ud800 Who is the director of Auckland Pride? \udfff")
@example("\x00\x1b[31mWho\x7f is the director?\u202e")
@example("   \t\n\x0b\x0c  ")
def test_engine_ask_gives_a_well_formed_result_or_a_clear_error(engine: Engine, question: str) -> None:
    try:
        result = engine.ask(question)
    except InputError as exc:
        assert "question is empty" in str(exc)
        return
    out = result_json(result)
    # Valid JSON that encodes as UTF-8, as stdout and the web API need it.
    json.loads(json.dumps(out, ensure_ascii=False).encode("utf-8"))
    _check(engine, out)


def test_qa_ask_json_prints_valid_json_for_any_bytes(engine: Engine, bundled_index: Path) -> None:
    # Not UTF-8 (arrives in Python as lone surrogates), markup, terminal escapes, mixed scripts.
    question = (
        b"Who is the director \xff\xfe of Auckland Pride? <script>alert(1)</script> "
        + "Wer ist der Direktor? 誰 \x1b[2J\u202e".encode()
    )
    done = subprocess.run(
        [sys.executable, "-m", "qa", "ask", question, "--index", str(bundled_index), "--json"],
        capture_output=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"Traceback" not in done.stderr
    out = json.loads(done.stdout.decode("utf-8"))
    assert "\ufffd" in out["question"] and "<script>" in out["question"]
    _check(engine, out)
