"""A hostile or careless client costs nothing: no uploads, bounded inputs, clear refusals, throttled logins.

The upload and login tests run ``python app.py`` (with and without ``--auth``)
and talk plain HTTP to it, as curl would; the ``/ask`` tests use the shared
app and ``gradio_client``; the bounds are also checked on the engine, which
the CLI and Python callers share.
"""

from __future__ import annotations

import http.client
import json
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pytest
from conftest import CORPUS, AppServer, serve_app

from qa.engine import Engine
from qa.errors import InputError
from qa.retrieval.retriever import check_filters
from qa.settings import MAX_FILTER_OUTLETS, MAX_HISTORY_QUESTIONS, MAX_TOP_K
from qa.web.app import ChatHandlers

USER, PASSWORD = "reader", "correct horse"
DIRECTOR = "Who is the director of Auckland Pride?"
# A follow-up ("the director" refers back), so the history's last question is read.
FOLLOW_UP = "What did the director say about police training?"
MB = 1 << 20


def _connection(server: AppServer) -> http.client.HTTPConnection:
    address = urllib.parse.urlsplit(server.url)
    return http.client.HTTPConnection(address.hostname, address.port, timeout=60)


@dataclass(frozen=True)
class _Login:
    status: int
    body: str
    cookies: dict[str, str]
    retry_after: float | None


def _log_in(server: AppServer, password: str) -> _Login:
    """POST Gradio's login form, as its page or gradio_client does."""
    connection = _connection(server)
    try:
        body = urllib.parse.urlencode({"username": USER, "password": password})
        connection.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        cookies = {}
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, value = header.split(";", 1)[0].partition("=")
            cookies[name.strip()] = value
        retry = response.getheader("Retry-After")
        return _Login(response.status, response.read().decode(), cookies, float(retry) if retry else None)
    finally:
        connection.close()


def _upload(server: AppServer, size: int, route: str = "gradio_api/upload", cookie: str = "") -> int | None:
    """POST a ``size``-byte file as ``curl -F files=@big.bin`` would, streamed in 1 MB chunks.

    Returns the status, or None when the server closed the connection before
    taking the whole body (a refusal that did not wait for the rest).
    """
    boundary = "newsqa-hostile-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    connection = _connection(server)
    try:
        connection.putrequest("POST", "/" + route)
        connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        connection.putheader("Content-Length", str(len(head) + size + len(tail)))
        if cookie:
            connection.putheader("Cookie", cookie)
        connection.endheaders()
        chunk = b"\0" * MB
        try:
            connection.send(head)
            for start in range(0, size, MB):
                connection.send(chunk[: min(MB, size - start)])
            connection.send(tail)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            response = connection.getresponse()
            response.read()
            return response.status
        except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
            return None
    finally:
        connection.close()


def _stored(folder: Path) -> list[str]:
    return sorted(
        f"{p.relative_to(folder)} ({p.stat().st_size} bytes)" for p in folder.rglob("*") if p.is_file()
    )


@pytest.mark.parametrize("auth", [False, True], ids=["open", "auth"])
def test_uploads_are_refused_and_the_temp_folder_is_empty_after_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundled_index: Path, auth: bool
) -> None:
    temp = tmp_path / "gradio-temp"
    temp.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(temp))
    folder = tmp_path / "app"
    folder.mkdir()
    shutil.copytree(bundled_index, folder / "index")
    options = ("--auth", f"{USER}:{PASSWORD}") if auth else ()
    with serve_app(folder, CORPUS, *options) as server:
        cookie = ""
        if auth:
            login = _log_in(server, PASSWORD)
            assert login.status == 200
            cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items() if k.startswith("access-token"))
        statuses = {size: _upload(server, size, cookie=cookie) for size in (100, 3 * MB)}
        started = time.monotonic()
        statuses[200 * MB] = _upload(server, 200 * MB, cookie=cookie)
        big_seconds = time.monotonic() - started
        for route in ("gradio_api/process_recording", "gradio_api/component_server"):
            statuses[route] = _upload(server, 100, route=route, cookie=cookie)
        assert all(s in (403, 413, None) for s in statuses.values()), statuses
        assert big_seconds < 30, f"refusing 200 MB took {big_seconds:.1f}s"
        assert not [f for f in temp.rglob("*") if f.is_file() and f.stat().st_size > 4096], _stored(temp)
        log = server.log.read_text()
    assert _stored(temp) == [], log
    # The app's own folder for Gradio's files is gone too (Gradio leaves an empty folder of its own).
    assert list(temp.glob("newsqa-gradio-*")) == [], log


@pytest.fixture
def auth_app(tmp_path: Path, bundled_index: Path) -> Iterator[AppServer]:
    shutil.copytree(bundled_index, tmp_path / "index")
    with serve_app(tmp_path, CORPUS, "--auth", f"{USER}:{PASSWORD}") as server:
        yield server


def test_thirty_wrong_logins_are_throttled_and_the_right_one_works_after_the_wait(
    auth_app: AppServer,
) -> None:
    started = time.monotonic()
    wrong = [_log_in(auth_app, "wrong") for _ in range(30)]
    statuses = [login.status for login in wrong]
    # Five free tries, then one per lock, each lock twice the last: at most a
    # few more in the time 30 requests take; the rest are refused unchecked.
    checked = statuses.count(400)  # Gradio's "Incorrect credentials"
    assert checked <= 5 + max(1, int(time.monotonic() - started)), statuses
    assert set(statuses) == {400, 429}, statuses
    assert all(login.retry_after for login in wrong if login.status == 429)
    locked = _log_in(auth_app, PASSWORD)
    assert locked.status == 429, "the right password waits for the lock too"
    time.sleep((locked.retry_after or 1.0) + 0.2)
    login = _log_in(auth_app, PASSWORD)
    assert login.status == 200 and json.loads(login.body) == {"success": True}
    assert any(name.startswith("access-token") for name in login.cookies)


def test_login_throttle_doubles_the_lock_after_the_free_tries_and_forgets_on_success() -> None:
    from qa.web.guard import LoginThrottle

    now = [100.0]
    throttle = LoginThrottle(
        free=3, base_seconds=1.0, longest_seconds=4.0, forget_seconds=60.0, clock=lambda: now[0]
    )
    assert [throttle.attempt("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # three free tries
    assert throttle.attempt("a") == 1.0  # then locked 1 s from the third
    assert throttle.attempt("b") == 0.0  # another client is not
    waits = []
    for _ in range(4):  # each try after a lock ends locks twice as long, up to longest_seconds
        now[0] += throttle.attempt("a")
        assert throttle.attempt("a") == 0.0
        waits.append(throttle.attempt("a"))
    assert waits == [2.0, 4.0, 4.0, 4.0]
    throttle.succeeded("a")  # a login forgets the failures
    assert [throttle.attempt("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    now[0] += 1.0 + 60.0 + 0.5  # as does an hour's quiet (here a minute) after the lock ends
    assert [throttle.attempt("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.attempt("a") == 1.0
    crowd = LoginThrottle(free=3, free_for_all=20, kept=10, clock=lambda: now[0])
    # A new address for every try (X-Forwarded-For from a local client): 20 are checked, then all wait.
    assert [crowd.attempt(f"10.0.0.{i}") for i in range(21)] == [0.0] * 20 + [1.0]
    assert crowd.attempt("10.0.0.99") == 1.0
    assert len(crowd._tries) == 10  # only the latest clients are remembered


# Each /ask argument of a wrong type or out of bounds, and the rule its message must state.
_HOSTILE = [
    ({"outlets": [1, 2]}, "outlets must be a list of outlet names"),
    ({"outlets": "1 NEWS"}, "outlets must be a list of outlet names"),
    ({"outlets": ["1 NEWS"] * (MAX_FILTER_OUTLETS + 1)}, f"at most {MAX_FILTER_OUTLETS} outlets"),
    ({"since": 20200101}, "since must be a date YYYY-MM-DD"),
    ({"until": ["2020-01-01"]}, "until must be a date YYYY-MM-DD"),
    ({"since": "2020-13-45"}, "since must be a date YYYY-MM-DD"),
    ({"top_k": "5"}, "top_k must be a whole number"),
    ({"top_k": 2.5}, "top_k must be a whole number"),
    ({"top_k": MAX_TOP_K + 1}, f"top_k must be <= {MAX_TOP_K}"),
    ({"top_k": 0}, "top_k must be >= 1"),
    ({"history": "Who is the director?"}, "history must be a list of earlier questions"),
    ({"history": [1, {"a": 2}]}, "history must be a list of earlier questions"),
    ({"question": 42}, "question must be text"),
    ({"question": "   "}, "the question is empty"),
    ({"outlets": ["The Times"]}, "unknown outlet 'The Times'"),
]


def test_hostile_ask_arguments_get_the_rule_and_log_one_line_each(app_server: AppServer) -> None:
    from gradio_client import Client

    client = Client(app_server.url, verbose=False)
    logged_before = app_server.log.stat().st_size
    for arguments, rule in _HOSTILE:
        call = {"question": DIRECTOR, **arguments}
        with pytest.raises(Exception, match=rule) as raised:
            client.predict(**call, api_name="/ask")
        assert "something went wrong" not in str(raised.value)
    assert "Max Tweedie" in client.predict(DIRECTOR, api_name="/ask")["answers"][0]["text"]
    time.sleep(0.5)  # the log is written by another process
    with app_server.log.open(encoding="utf-8", errors="replace") as log:
        log.seek(logged_before)
        new = log.read()
    assert "Traceback" not in new, new
    refused = [line for line in new.splitlines() if "refused" in line]
    assert len(refused) == len(_HOSTILE), new


def test_a_body_over_the_cap_is_refused_and_a_megabyte_history_entry_is_cut(app_server: AppServer) -> None:
    from gradio_client import Client

    from qa.web.guard import MAX_REQUEST_BYTES

    body = json.dumps({"data": [DIRECTOR, ["x" * (MAX_REQUEST_BYTES + 1)]]})
    connection = _connection(app_server)
    try:
        connection.request("POST", "/gradio_api/call/ask", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 413, response.read()[:200]
        assert str(MAX_REQUEST_BYTES) in response.read().decode()
    finally:
        connection.close()
    huge = DIRECTOR + " " + "word " * (MB // 5)
    answered = Client(app_server.url, verbose=False).predict(FOLLOW_UP, history=[huge], api_name="/ask")
    assert answered["answers"], answered


class _Faulty:
    """The engine, but a question with "kaboom" raises as a bug would."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.outlets = engine.outlets

    def ask(self, question: str, **options: object) -> object:
        if "kaboom" in question:
            raise RuntimeError("injected fault")
        return self._engine.ask(question, **options)


def test_a_user_error_logs_one_line_and_a_bug_its_traceback(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    handlers = ChatHandlers(_Faulty(engine))  # type: ignore[arg-type]
    with caplog.at_level("WARNING", logger="qa.web.app"):
        with pytest.raises(gr.Error, match="unknown outlet") as refused:
            handlers.api_ask(DIRECTOR, outlets=["The Times"])
        assert refused.value.print_exception is False  # Gradio prints no traceback either
        assert [(r.levelname, r.exc_info is None) for r in caplog.records] == [("WARNING", True)]
        assert "\n" not in caplog.records[0].getMessage()
        caplog.clear()
        with pytest.raises(gr.Error, match="something went wrong") as failed:
            handlers.api_ask("Who said kaboom?")
        assert failed.value.print_exception is False  # logged once, here, not again by Gradio
    assert [r.exc_info is not None for r in caplog.records] == [True]
    assert "injected fault" in caplog.text


def test_history_is_cut_in_count_and_characters_with_notices() -> None:
    from qa.retrieval.question import clean_history

    history = ["Who is the director?", "  ", *[f"question {i}" for i in range(MAX_HISTORY_QUESTIONS + 10)]]
    kept, notices = clean_history([*history, "x " * 400], limit=100)
    assert len(kept) == MAX_HISTORY_QUESTIONS
    assert kept[-2] == f"question {MAX_HISTORY_QUESTIONS + 9}"
    assert kept[-1] == "x " * 49 + "x" and len(kept[-1]) <= 100
    assert notices == [
        f"history had {MAX_HISTORY_QUESTIONS + 13} entries; only the last {MAX_HISTORY_QUESTIONS} were read",
        "1 earlier question in the history was longer than 100 characters and was cut",
    ]
    assert clean_history(["Who is the director?", " \n "], limit=100) == (["Who is the director?"], [])


def test_a_megabyte_history_entry_costs_no_more_than_a_short_one(engine: Engine) -> None:
    engine.ask(FOLLOW_UP, history=[DIRECTOR])  # warm up
    started = time.perf_counter()
    engine.ask(FOLLOW_UP, history=[DIRECTOR])
    short_seconds = time.perf_counter() - started
    huge = DIRECTOR + " " + "word " * (MB // 5)
    started = time.perf_counter()
    result = engine.ask(FOLLOW_UP, history=["earlier", huge])
    huge_seconds = time.perf_counter() - started
    assert any("history was longer than" in n and "was cut" in n for n in result.notices), result.notices
    assert huge_seconds < short_seconds + 1.0, (huge_seconds, short_seconds)
    # Read as its first 500 characters would be.
    same = engine.ask(FOLLOW_UP, history=[huge[: engine.settings.max_question_chars + 100]])
    assert [a.text for a in result.answers] == [a.text for a in same.answers]


def test_engine_bounds_top_k_and_outlets_for_every_caller(engine: Engine) -> None:
    with pytest.raises(InputError, match=f"top_k must be <= {MAX_TOP_K}, got {MAX_TOP_K + 1}"):
        engine.ask(DIRECTOR, top_k=MAX_TOP_K + 1)
    with pytest.raises(InputError, match="top_k must be a whole number, got '5'"):
        engine.ask(DIRECTOR, top_k="5")  # type: ignore[arg-type]
    with pytest.raises(
        InputError, match=f"at most {MAX_FILTER_OUTLETS} outlets, got {MAX_FILTER_OUTLETS + 1}"
    ):
        engine.ask(DIRECTOR, outlets=["1 NEWS"] * (MAX_FILTER_OUTLETS + 1))
    assert len(engine.ask(DIRECTOR, top_k=MAX_TOP_K).answers) <= MAX_TOP_K


def test_check_filters_states_the_rule_for_each_wrong_value() -> None:
    available = ("1 NEWS", "RNZ")
    assert check_filters(available, ["rnz "], "2020-03-01", None).outlets == ("RNZ",)
    for outlets, since, rule in [
        ([1, 2], None, "outlets must be a list of outlet names, got 1"),
        ("RNZ", None, "outlets must be a list of outlet names, got 'RNZ'"),
        (["x"] * (MAX_FILTER_OUTLETS + 1), None, f"at most {MAX_FILTER_OUTLETS} outlets"),
        ([], 20200101, "since must be a date YYYY-MM-DD, got 20200101"),
        (["n" * 5000], None, r"unknown outlet 'n{20,80}\.\.\.'; this corpus has: 1 NEWS, RNZ$"),
    ]:
        with pytest.raises(InputError, match=rule):
            check_filters(available, outlets, since, None)  # type: ignore[arg-type]
    many = tuple(f"Outlet {i:03d}" for i in range(300))
    with pytest.raises(InputError, match=r"this corpus has: Outlet 000, .*Outlet 019 and 280 more$"):
        check_filters(many, ["The Times"], None, None)
