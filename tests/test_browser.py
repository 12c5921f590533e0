"""The chat app end to end: a real server, a real headless Chromium, the real engine.

The app is started once per session with ``python app.py`` on a free port
(``app_server`` in conftest.py); every test opens its own page (its own Gradio
session), so the tests do not depend on each other or on their order. Screenshots go to
``artifacts/screenshots/`` (or ``$NEWSQA_SCREENSHOTS``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port, serve_app

from qa.engine import Engine
from qa.web.app import build_app

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
ANSWER_MS = 30_000
DIRECTOR = "Who is the director of Auckland Pride?"
FOLLOW_UP = "What did he say about police training?"
XSS = "<img src=x onerror=alert(1)>"


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
    # The article panel installs the citation handler when it mounts, which can
    # come a moment after the question box; tests that click citations need it.
    page.wait_for_function("typeof window.newsqaOpenCitation === 'function'")
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
    assert sorted(result) == ["abstained", "answers", "differences", "latency_ms", "passages", "question"]
    top = result["answers"][0]
    assert "Max Tweedie" in top["text"]
    assert (top["citations"][0]["outlet"], top["citations"][0]["date"]) == ("1 NEWS", "2020-03-09")

    follow = client.predict(FOLLOW_UP, history=[DIRECTOR], api_name="/ask")
    assert "training" in follow["answers"][0]["text"]


def test_ask_api_matches_qa_ask_json(app_url, engine):
    """Same JSON as ``qa ask --json`` (timing aside), from the shared engine fixture."""
    from gradio_client import Client

    from qa.web.result_json import result_json

    got = Client(app_url, verbose=False).predict(FOLLOW_UP, history=[DIRECTOR], top_k=2, api_name="/ask")
    want = result_json(engine.ask(FOLLOW_UP, history=[DIRECTOR], top_k=2))
    assert {**got, "latency_ms": 0} == {**want, "latency_ms": 0}


# An article whose body, outlet, title and link are all markup, so every panel
# that shows article text (sources, full article, comparison) is put to the test.
_MARKUP_ARTICLE = (
    "The harbour board met on Tuesday. "
    'The mayor of Port Marlow replied <img src=x onerror="alert(1)"> to the harbour board. '
    "Residents said <script>alert(2)</script> was painted on the harbour wall overnight. "
    "The board will meet again next month."
)
_MARKUP_OUTLET = "<b onmouseover=alert(3)>Marlow Times</b>"
USER, PASSWORD = "reader", "correct horse"


@pytest.fixture(scope="session")
def markup_app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second app, behind ``--auth``, over the bundled corpus plus an article full of markup."""
    folder = tmp_path_factory.mktemp("markup-app")
    corpus = folder / "corpus"
    shutil.copytree(ROOT / "data" / "corpus", corpus)
    (corpus / "marlow.txt").write_text(_MARKUP_ARTICLE, encoding="utf-8")
    with (corpus / "sources.csv").open("a", encoding="utf-8") as rows:
        rows.write(
            f'marlow.txt,"{_MARKUP_OUTLET}",2020-03-12,<script>alert(4)</script>,javascript:alert(5)\n'
        )
    with serve_app(folder, corpus, "--auth", f"{USER}:{PASSWORD}") as server:
        yield server.url


def _log_in(page, url: str, password: str) -> None:
    page.goto(url)
    page.locator("input[type=text]").first.fill(USER)
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name="Login").click()


def test_auth_asks_for_a_login_and_refuses_a_wrong_password(browser, markup_app_url: str) -> None:
    from gradio_client import Client

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        _log_in(page, markup_app_url, "wrong")
        playwright_api.expect(page.get_by_text("Incorrect Credentials")).to_be_visible()
        assert page.locator("#question textarea").count() == 0
        _shot(page, "login-refused")
        _log_in(page, markup_app_url, PASSWORD)
        page.wait_for_selector("#question textarea")
        reply = _ask(page, DIRECTOR)
        playwright_api.expect(reply).to_contain_text("Max Tweedie")
    finally:
        context.close()
    with pytest.raises(Exception, match=r"(?i)login|auth|401"):
        Client(markup_app_url, verbose=False)
    client = Client(markup_app_url, auth=(USER, PASSWORD), verbose=False)
    assert "Max Tweedie" in client.predict(DIRECTOR, api_name="/ask")["answers"][0]["text"]


def test_markup_in_articles_stays_text_in_sources_article_and_comparison(
    browser, markup_app_url: str, dialogs: list[str]
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        _log_in(page, markup_app_url, PASSWORD)
        page.wait_for_selector("#question textarea")
        reply = _ask(page, "What did the mayor of Port Marlow reply to the harbour board?")
        playwright_api.expect(reply).to_contain_text('<img src=x onerror="alert(1)">')
        sources = page.locator("#sources-panel")
        playwright_api.expect(sources).to_contain_text("<script>alert(2)</script>")
        playwright_api.expect(sources).to_contain_text(_MARKUP_OUTLET)

        reply.locator("a.cite").first.click()
        article = page.locator("#article-panel")
        playwright_api.expect(article.locator("h3")).to_have_text("<script>alert(4)</script>")
        playwright_api.expect(article).to_contain_text("<script>alert(2)</script> was painted")
        assert article.locator("a[href^='javascript']").count() == 0

        page.click("#compare")
        row = page.locator("#compare-panel tbody tr", has_text="Marlow Times")
        playwright_api.expect(row.locator("th")).to_have_text(_MARKUP_OUTLET)
        playwright_api.expect(row).to_contain_text('<img src=x onerror="alert(1)">')

        page.locator("#sources-panel").hover()
        page.wait_for_timeout(300)  # give an injected handler the chance to fire
        assert dialogs == []
        assert (
            page.locator("img[src='x'], #sources-panel b, #compare-panel b, script:text('alert')").count()
            == 0
        )
        _shot(page, "markup-in-articles")
    finally:
        context.close()


@pytest.mark.parametrize(
    "key",
    ["../README.md:0:10", "/etc/passwd:0:10", "..%2F..%2Fetc%2Fpasswd:0:5", "no-such-article:0:5", "x"],
)
def test_the_article_view_opens_only_indexed_articles(page, key: str) -> None:
    page.evaluate("key => window.newsqaOpenCitation(key)", key)
    playwright_api.expect(page.locator("#article-panel")).to_contain_text("that citation cannot be opened")
    assert page.locator("#article-panel .article-body").count() == 0


class _FaultyEngine(Engine):
    """The real engine, with one injected fault: a question holding "kaboom" raises."""

    def ask(self, question: str, *args, **kwargs):
        if "kaboom" in question:
            raise RuntimeError("injected fault")
        return super().ask(question, *args, **kwargs)


def test_a_question_that_raises_in_the_engine_gets_a_short_error_and_the_next_works(
    browser, bundled_index: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_app(_FaultyEngine.open(ROOT / "data" / "corpus", bundled_index, progress=False))
    port = free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, ssr_mode=False)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#question textarea")
        failed = _ask(page, "Who said kaboom?")
        playwright_api.expect(failed).to_contain_text("something went wrong on our side")
        assert "injected fault" not in failed.inner_text() and "Traceback" not in failed.inner_text()
        playwright_api.expect(_ask(page, DIRECTOR)).to_contain_text("Max Tweedie")
        _shot(page, "engine-fault")
    finally:
        context.close()
        app.close()
    logged = [r for r in caplog.records if r.name == "qa.web.app" and r.exc_info]
    assert logged and "injected fault" in caplog.text and "Traceback" in caplog.text


DIFFER_CORPUS = ROOT / "tests" / "fixtures" / "differ"
VIOLIN_PRICE = "How much did the Arden violin sell for?"


@pytest.fixture(scope="session")
def differ_app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An app over tests/fixtures/differ: two outlets that report different prices for one sale."""
    with serve_app(tmp_path_factory.mktemp("differ-app"), DIFFER_CORPUS) as server:
        yield server.url


def test_sources_that_differ_are_shown_and_each_value_opens_its_article(browser, differ_app_url: str) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(differ_app_url)
    page.wait_for_selector("#question textarea")
    page.wait_for_function("typeof window.newsqaOpenCitation === 'function'")
    reply = _ask(page, VIOLIN_PRICE)
    notice = reply.locator(".differ")
    playwright_api.expect(notice).to_contain_text("Sources differ on this figure")
    playwright_api.expect(notice).to_contain_text("Harbour Times, 12 June 2023")
    playwright_api.expect(notice).to_contain_text("Coastal Wire, 12 June 2023")
    _shot(page, "outlets-differ")

    notice.locator("a.cite", has_text="$2.4 million").click()
    cited = page.locator("#article-panel mark#cited-span")
    playwright_api.expect(cited).to_have_text("$2.4 million")
    playwright_api.expect(page.locator("#article-panel .meta")).to_contain_text("Harbour Times")

    page.click("#compare")
    rows = page.locator("#compare-panel tbody tr")
    playwright_api.expect(rows).to_have_count(3)
    marked = page.locator("#compare-panel .differs mark")
    playwright_api.expect(marked).to_have_count(2)
    assert sorted(marked.all_inner_texts()) == ["$2.1 million", "$2.4 million"]
    note = page.locator("#compare-panel .differs-note").first
    playwright_api.expect(note).to_contain_text("Outlets differ")
    _shot(page, "compare-outlets-differ")
    context.close()
