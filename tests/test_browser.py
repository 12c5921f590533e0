"""The chat app end to end: a real server, a real headless Chromium, the real engine.

The app is started once per session with ``python app.py`` on a free port and
a fresh index; every test opens its own page (its own Gradio session), so the
tests do not depend on each other or on their order. Screenshots go to
``artifacts/screenshots/`` (or ``$NEWSQA_SCREENSHOTS``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# First start builds the index (about 10 s) and loads the model; allow for a slow machine.
STARTUP_SECONDS = 120
ANSWER_MS = 30_000
DIRECTOR = "Who is the director of Auckland Pride?"
FOLLOW_UP = "What did he say about police training?"
XSS = "<img src=x onerror=alert(1)>"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the app, started in a subprocess over the bundled corpus."""
    port = _free_port()
    folder = tmp_path_factory.mktemp("webapp")
    log_path = folder / "app.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port), "--index", str(folder / "index")],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app did not answer within {STARTUP_SECONDS}s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def dialogs() -> list[str]:
    """Messages of any alert/confirm/prompt the page opens (there should be none)."""
    return []


@pytest.fixture
def page(browser, app_url: str, dialogs: list[str]) -> Iterator[object]:
    """A fresh page (a new Gradio session) on the loaded app."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(app_url)
    page.wait_for_selector("#question textarea")
    yield page
    context.close()


def _shot(page, name: str) -> Path:
    folder = Path(os.environ.get("NEWSQA_SCREENSHOTS", ROOT / "artifacts" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def _ask(page, question: str):
    """Type ``question``, send it and return the locator of the new reply."""
    replies = page.locator("#chat .reply")
    before = replies.count()
    page.fill("#question textarea", question)
    page.click("#ask")
    page.wait_for_function(f"document.querySelectorAll('#chat .reply').length > {before}", timeout=ANSWER_MS)
    return replies.nth(before)


def test_examples_show_on_first_load_and_ask_when_clicked(page):
    example = page.locator("#chat").get_by_text(DIRECTOR)
    playwright_api.expect(example.first).to_be_visible()
    _shot(page, "first-load")

    example.first.click()
    reply = page.locator("#chat .reply").first
    playwright_api.expect(reply).to_contain_text("Max Tweedie", timeout=ANSWER_MS)


def test_outlet_filter_applies_to_the_next_question(page):
    page.get_by_text("Filters (apply to the next question)").click()
    page.locator("#outlet-filter input").click()
    page.get_by_role("option", name="Star Observer").click()
    page.keyboard.press("Escape")
    reply = _ask(page, "What did police offer the couple?")
    playwright_api.expect(reply.locator(".note")).to_have_text("Filters: only Star Observer.")
    outlets = {text.split(" · ")[0].split("] ")[1] for text in reply.locator(".cites a").all_inner_texts()}
    assert outlets == {"Star Observer"}


def test_answer_cites_outlet_and_date_and_opens_the_article(page):
    reply = _ask(page, DIRECTOR)
    playwright_api.expect(reply.locator("mark").first).to_have_text("Max Tweedie")
    citation = reply.locator("a.cite", has_text="9 March 2020").first
    playwright_api.expect(citation).to_contain_text("1 NEWS")
    # The sources panel lists the passages, with the answer highlighted in context.
    highlighted = page.locator("#sources-panel mark", has_text="Max Tweedie")
    playwright_api.expect(highlighted.first).to_be_visible()

    citation.click()
    cited = page.locator("#article-panel mark#cited-span")
    playwright_api.expect(cited).to_contain_text("Max Tweedie")
    playwright_api.expect(cited).to_be_in_viewport()
    playwright_api.expect(page.locator("#article-panel .link a")).to_have_attribute(
        "href",
        "https://www.tvnz.co.nz/one-news/new-zealand/police-commissioner-apologises-man-alleged-"
        "homophobic-attack-after-wellington-pride-parade",
    )
    _shot(page, "answer-and-article")


def test_follow_up_uses_the_conversation(page):
    _ask(page, DIRECTOR)
    reply = _ask(page, FOLLOW_UP)
    playwright_api.expect(reply.locator(".extract").first).to_contain_text("training")
    _shot(page, "follow-up")

    page.click("#new-conversation")
    playwright_api.expect(page.locator("#chat .reply")).to_have_count(0)


def test_compare_outlets_lists_each_outlet(page):
    _ask(page, "What happened after the Wellington Pride Parade?")
    page.click("#compare")
    rows = page.locator("#compare-panel tbody tr")
    playwright_api.expect(rows).to_have_count(3)
    outlets = rows.locator("th").all_inner_texts()
    assert sorted(outlets) == ["1 NEWS", "NZ Herald", "Star Observer"]
    _shot(page, "compare-outlets")


def test_markup_in_a_question_stays_text(page, dialogs):
    reply = _ask(page, XSS)
    page.wait_for_timeout(300)  # give an injected handler the chance to fire
    assert dialogs == []
    assert page.locator("img[src='x']").count() == 0
    playwright_api.expect(page.locator("#chat").get_by_text(XSS)).to_be_visible()
    playwright_api.expect(reply).to_be_visible()
    _shot(page, "markup-question")


def test_no_answer_says_so_and_offers_related_passages(page):
    reply = _ask(page, "What is the boiling point of tungsten?")
    playwright_api.expect(reply.locator(".abstain")).to_contain_text("could not find an answer")
    playwright_api.expect(reply.get_by_text("Possibly related:")).to_be_visible()


def test_ask_api_returns_the_cli_json(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    result = client.predict(DIRECTOR, api_name="/ask")
    assert sorted(result) == ["abstained", "answers", "latency_ms", "passages", "question"]
    top = result["answers"][0]
    assert "Max Tweedie" in top["text"]
    assert (top["citations"][0]["outlet"], top["citations"][0]["date"]) == ("1 NEWS", "2020-03-09")

    follow = client.predict(FOLLOW_UP, history=[DIRECTOR], api_name="/ask")
    assert "training" in follow["answers"][0]["text"]


def test_ask_api_matches_qa_ask_json(app_url, engine):
    """Same JSON as ``qa ask --json`` (timing aside), from the shared engine fixture."""
    from gradio_client import Client

    from qa.jsonout import result_json

    got = Client(app_url, verbose=False).predict(FOLLOW_UP, history=[DIRECTOR], top_k=2, api_name="/ask")
    want = result_json(engine.ask(FOLLOW_UP, history=[DIRECTOR], top_k=2))
    assert {**got, "latency_ms": 0} == {**want, "latency_ms": 0}
