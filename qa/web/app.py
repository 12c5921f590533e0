"""The web chat: Gradio wiring around one shared Engine.

Handlers call the engine and hand its records to :mod:`qa.web.html`, which
builds every piece of HTML (escaped); nothing here formats text itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gradio as gr
from starlette.middleware import Middleware

from qa.engine import Engine
from qa.errors import QAError
from qa.retrieval.backend import Backend
from qa.settings import MAX_HISTORY_QUESTIONS
from qa.web.guard import GRADIO_MAX_FILE_SIZE, RequestGuard
from qa.web.html import (
    article_html,
    compare_html,
    compare_rows,
    filters_note,
    message_html,
    parse_cite_key,
    question_html,
    reply_html,
    sources_html,
)
from qa.web.result_json import result_json

EXAMPLES = (
    "Who is the director of Auckland Pride?",
    "What did police offer the couple?",
    "Where did the attack happen?",
    "Did the police commissioner apologise?",
)
# Questions run on Gradio's thread pool and the engine is safe to share for
# reading. Four at once lets a quick question pass a slow one without
# oversubscribing the CPU the model encodes on; the rest wait in the queue.
CONCURRENCY = 4
# Beyond this many waiting requests a user is told the app is busy instead of
# waiting minutes.
QUEUE_SIZE = 64

# What a user sees when the engine fails in a way it should not; the log gets
# the traceback, the chat a short note, and the next question runs as usual.
_INTERNAL_ERROR = "Sorry, something went wrong on our side; it has been logged. Please try another question."
log = logging.getLogger(__name__)

_SOURCES_EMPTY = '<p class="empty">The passages behind the current reply appear here.</p>'
_ARTICLE_EMPTY = '<p class="empty">Click a citation to read the full article.</p>'

# One click listener for the whole page: any citation link (in the chat, the
# sources or the comparison) asks the server for that article span instead of
# being followed.
# It is registered once; the trigger is refreshed if the component remounts.
_ARTICLE_JS = """
window.newsqaOpenCitation = (key) => trigger('click', {cite: key});
if (!window.newsqaCiteListener) {
  window.newsqaCiteListener = true;
  document.addEventListener('click', (event) => {
    const link = event.target.closest ? event.target.closest('a[href^="#cite:"]') : null;
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    window.newsqaOpenCitation(decodeURIComponent(link.getAttribute('href').slice(6)));
  }, true);
}
// Scroll the article body (not the page) to the cited span, a third of the
// way down so the sentences before it give context; then bring the panel into
// view if the page has it off screen.
watch('value', () => {
  const body = element.querySelector('.article-body');
  const mark = element.querySelector('#cited-span');
  if (!body || !mark) return;
  body.scrollTop = Math.max(0, mark.offsetTop - body.clientHeight / 3);
  mark.scrollIntoView({block: 'nearest'});
});
"""

_CSS = """
.reply > div, .reply ol, .reply ul { margin: 0.3em 0; }
.reply li { margin-bottom: 0.5em; }
.reply .extract { font-size: 1.02em; }
.reply .cites, .reply .also, .reply .note { font-size: 0.9em; opacity: 0.85; }
.reply .abstain { font-weight: 600; }
.reply .differ { border-left: 3px solid #d97706; padding: 0.2em 0.6em; background: rgba(217, 119, 6, 0.08); }
.compare .differs mark { background: rgba(217, 119, 6, 0.35); }
.compare .differs-note, .compare .closest { font-size: 0.88em; opacity: 0.85; margin-top: 0.2em; }
.reply .snippet { font-size: 0.88em; opacity: 0.8; }
mark { background: #ffe58a; color: inherit; padding: 0 2px; border-radius: 2px; }
a.cite { cursor: pointer; }
#sources-panel, #article-panel { font-size: 0.92em; }
#sources-panel ol.sources { padding-left: 0; list-style: none; margin: 0; }
#sources-panel li.source { border-bottom: 1px solid var(--border-color-primary); padding: 0.5em 0; }
#sources-panel li.source > div { margin: 0.15em 0; }
#sources-panel .meta, #article-panel .meta { font-weight: 600; }
#sources-panel .link, #article-panel .link { font-size: 0.85em; word-break: break-all; }
#article-panel .article-body { white-space: pre-wrap; line-height: 1.5; position: relative;
  max-height: 460px; overflow-y: auto; margin-top: 0.5em; padding-right: 0.5em; }
#article-panel h3 { margin: 0 0 0.3em 0; }
.compare .meta { margin-bottom: 0.4em; }
.compare table { width: 100%; border-collapse: collapse; }
.compare th, .compare td { text-align: left; vertical-align: top; padding: 0.35em 0.5em;
  border-bottom: 1px solid var(--border-color-primary); }
.compare td:first-of-type { white-space: nowrap; }
.empty { opacity: 0.7; font-style: italic; }
"""


def _filters(outlets: Sequence[str] | None, since: str | None, until: str | None) -> dict[str, Any]:
    """Engine keyword arguments from the filter widgets or the API (blank means no filter).

    A value of the wrong type is passed on as it is, for the engine's check
    (qa.retrieval.retriever.check_filters) to refuse with its rule.
    """
    outlets = () if outlets is None else outlets
    return {"outlets": outlets, "since": _blank_is_none(since), "until": _blank_is_none(until)}


def _blank_is_none(value: object) -> object:
    """A date filter as the engine takes it: None when missing or blank, else stripped (if text)."""
    if isinstance(value, str):
        return value.strip() or None
    return value


def _refused(what: str, exc: QAError) -> None:
    """Log a user's mistake (an unknown outlet, a bad date) as one line: it is no fault of the app's."""
    log.warning("%s refused: %s", what, " ".join(str(exc).split()))


def _note(messages: list[dict[str, Any]], history: list[str], text: str) -> tuple[Any, ...]:
    """A chat turn that ends in a note instead of an answer; the conversation's history is unchanged."""
    reply = {"role": "assistant", "content": message_html(text)}
    return [*messages, reply], history, gr.skip(), "", ""


class ChatHandlers:
    """The app's event handlers, over one engine shared by every session.

    Gradio names each endpoint after its handler (``/chat``, ``/compare``, ...;
    undocumented but callable) and reads ``api_ask``'s signature and docstring
    for the ``/ask`` API docs, so renaming a method or a parameter changes the API.
    The other handlers are explained in comments, not docstrings, because Gradio
    would publish a docstring as that endpoint's description.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # Answers ``question`` in the conversation; the outputs are ``ask_outputs`` in _wire_events.
    def chat(
        self,
        question: str,
        messages: list[dict[str, Any]],
        history: list[str],
        outlets: list[str],
        since: str,
        until: str,
    ) -> tuple[Any, ...]:
        if not (question or "").strip():
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        filters = _filters(outlets, since, until)
        messages = [*messages, {"role": "user", "content": question_html(question)}]
        try:
            result = self.engine.ask(question, history=history, **filters)
        except QAError as exc:
            _refused("question", exc)
            return _note(messages, history, f"Sorry, I can't answer that: {exc}")
        except Exception:
            log.exception("question failed: %r", question)
            return _note(messages, history, _INTERNAL_ERROR)
        reply = reply_html(result, filters_note(filters["outlets"], filters["since"], filters["until"]))
        messages.append({"role": "assistant", "content": reply})
        # Only the latest questions are read (qa.retrieval.question.clean_history); keep no more.
        history = [*history, result.question][-MAX_HISTORY_QUESTIONS:]
        return messages, history, sources_html(result), "", ""

    # Asks the example question the user clicked, as if typed.
    def chat_example(
        self,
        messages: list[dict[str, Any]],
        history: list[str],
        outlets: list[str],
        since: str,
        until: str,
        event: gr.SelectData,
    ) -> tuple[Any, ...]:
        return self.chat(event.value["text"], messages, history, outlets, since, until)

    # Asks the last question again of each outlet alone, to show them side by side.
    def compare(self, history: list[str], since: str, until: str) -> str:
        if not history:
            return message_html("Ask a question first, then compare how each outlet reported it.")
        engine = self.engine
        try:
            per_outlet = [
                (o, engine.ask(history[-1], history=history[:-1], top_k=1, **_filters([o], since, until)))
                for o in engine.outlets
            ]
            # The differences are those of the whole archive's answer, as the chat showed them.
            overall = engine.ask(history[-1], history=history[:-1], **_filters([], since, until))
        except QAError as exc:
            _refused("comparison", exc)
            return message_html(f"Sorry, I can't compare outlets: {exc}")
        except Exception:
            log.exception("comparison failed: %r", history[-1])
            return message_html(_INTERNAL_ERROR)
        return compare_html(history[-1], compare_rows(per_outlet, overall.differences), overall.differences)

    # Shows the cited article with its span marked; ``event.cite`` comes from _ARTICLE_JS's listener.
    def open_citation(self, event: gr.EventData) -> str:
        try:
            ref = parse_cite_key(event.cite)
            return article_html(self.engine.article(ref.doc_id), ref.start, ref.end)
        except (AttributeError, QAError) as exc:
            return message_html(f"Sorry, that citation cannot be opened: {exc}")
        except Exception:
            log.exception("citation failed: %r", getattr(event, "cite", None))
            return message_html(_INTERNAL_ERROR)

    # Empties the chat, history, sources, article and comparison.
    @staticmethod
    def new_conversation() -> tuple[Any, ...]:
        return [], [], _SOURCES_EMPTY, _ARTICLE_EMPTY, ""

    def api_ask(
        self,
        question: str,
        history: list[str] | None = None,
        outlets: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        top_k: int | None = None,
    ) -> dict:
        """Answer a question; returns the JSON of `qa ask --json`.

        Args:
            question: the question; a long one is cut.
            history: earlier questions of the conversation, oldest first; only the latest are read.
            outlets: keep only these outlets.
            since: keep only articles dated on or after (YYYY-MM-DD).
            until: keep only articles dated on or before (YYYY-MM-DD).
            top_k: most answers to return.
        """
        # Arguments arrive as whatever JSON a client sent; the engine checks
        # each (types included) and says the rule, so only null is mapped here.
        try:
            result = self.engine.ask(
                question,
                history=() if history is None else history,
                top_k=top_k,
                **_filters(outlets, since, until),
            )
        except QAError as exc:
            # gr.Error reaches an API client as a message; Gradio prints no traceback of it.
            _refused("API question", exc)
            raise gr.Error(str(exc), print_exception=False) from exc
        except Exception as exc:
            log.exception("API question failed: %r", question)
            raise gr.Error(_INTERNAL_ERROR, print_exception=False) from exc
        return result_json(result)


@dataclass(frozen=True)
class _Widgets:
    """The components the event wiring needs, so layout and wiring can be separate functions."""

    history: gr.State
    chatbot: gr.Chatbot
    question: gr.Textbox
    send: gr.Button
    compare: gr.Button
    reset: gr.Button
    outlets: gr.Dropdown
    since: gr.Textbox
    until: gr.Textbox
    comparison: gr.HTML
    sources: gr.HTML
    article: gr.HTML


def _chatbot() -> gr.Chatbot:
    """The conversation, showing the example questions until the first one is asked."""
    return gr.Chatbot(
        label="Conversation",
        elem_id="chat",
        height=480,
        examples=[{"text": q} for q in EXAMPLES],
        placeholder="Ask a question about the news archive, or pick an example.",
        latex_delimiters=[],
        feedback_options=None,
        buttons=["copy"],
        layout="bubble",
    )


def _filter_widgets(outlet_choices: Sequence[str]) -> tuple[gr.Dropdown, gr.Textbox, gr.Textbox]:
    """Outlet and date filters (outlets, since, until), folded away until wanted."""
    with gr.Accordion("Filters (apply to the next question)", open=False):
        outlets = gr.Dropdown(
            choices=list(outlet_choices),
            multiselect=True,
            label="Outlets (none = all)",
            elem_id="outlet-filter",
        )
        with gr.Row():
            since = gr.Textbox(label="From date", placeholder="YYYY-MM-DD")
            until = gr.Textbox(label="To date", placeholder="YYYY-MM-DD")
    return outlets, since, until


def _build_widgets(outlet_choices: Sequence[str]) -> _Widgets:
    """Lay out the page inside the current Blocks: the chat on the left, sources and article on the right."""
    history = gr.State([])
    gr.Markdown(
        "## newsqa: ask the news archive\n"
        "Every answer is a verbatim extract, cited to its outlet and date. "
        "Click a citation to read the article."
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            chatbot = _chatbot()
            with gr.Row():
                question = gr.Textbox(
                    placeholder="Ask a question, e.g. Who is the director of Auckland Pride?",
                    show_label=False,
                    elem_id="question",
                    scale=5,
                    max_lines=4,
                )
                send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
            with gr.Row():
                compare = gr.Button("Compare outlets", elem_id="compare", size="sm")
                reset = gr.Button("New conversation", elem_id="new-conversation", size="sm")
            outlets, since, until = _filter_widgets(outlet_choices)
            comparison = gr.HTML("", elem_id="compare-panel")
        with gr.Column(scale=2):
            gr.Markdown("### Sources")
            sources = gr.HTML(_SOURCES_EMPTY, elem_id="sources-panel", max_height=420, js_on_load=None)
            gr.Markdown("### Full article")
            article = gr.HTML(_ARTICLE_EMPTY, elem_id="article-panel", js_on_load=_ARTICLE_JS)
    return _Widgets(
        history=history,
        chatbot=chatbot,
        question=question,
        send=send,
        compare=compare,
        reset=reset,
        outlets=outlets,
        since=since,
        until=until,
        comparison=comparison,
        sources=sources,
        article=article,
    )


def _wire_events(w: _Widgets, handlers: ChatHandlers) -> None:
    """Connect the widgets to the handlers, and add the ``/ask`` API; only ``/ask`` is documented."""
    ask_inputs = [w.question, w.chatbot, w.history, w.outlets, w.since, w.until]
    ask_outputs = [w.chatbot, w.history, w.sources, w.question, w.comparison]
    for trigger in (w.question.submit, w.send.click):
        trigger(handlers.chat, ask_inputs, ask_outputs, api_visibility="undocumented")
    w.chatbot.example_select(
        handlers.chat_example,
        [w.chatbot, w.history, w.outlets, w.since, w.until],
        ask_outputs,
        api_visibility="undocumented",
    )
    w.compare.click(
        handlers.compare, [w.history, w.since, w.until], w.comparison, api_visibility="undocumented"
    )
    w.article.click(handlers.open_citation, None, w.article, api_visibility="undocumented")
    w.reset.click(
        handlers.new_conversation,
        None,
        [w.chatbot, w.history, w.sources, w.article, w.comparison],
        queue=False,
        api_visibility="undocumented",
    )
    gr.api(handlers.api_ask, api_name="ask")


def build_app(engine: Engine) -> gr.Blocks:
    """The Blocks app over ``engine``; call ``.queue(...).launch(...)`` on it (see :func:`serve`)."""
    handlers = ChatHandlers(engine)
    with gr.Blocks(title="newsqa", analytics_enabled=False) as app:
        _wire_events(_build_widgets(engine.outlets), handlers)
    return app


def serve(
    corpus_dir: Path | None,
    index_dir: Path | None,
    model: str | None,
    host: str,
    port: int,
    auth: tuple[str, str] | None = None,
    reader: str | None = None,
    backend: Literal["local", "milvus"] | Backend = "local",
    uri: str | None = None,
    collection: str | None = None,
    follow_symlinks: bool = False,
) -> int:
    """Open (building on first start) the index, then serve the chat until interrupted.

    Args:
        corpus_dir: folder of article files and ``sources.csv``, or a ``.jsonl``/``.csv`` archive file.
        index_dir: index folder; built with progress bars when missing or stale.
        model: sentence-transformers model, or None for the index's own.
        host: address to listen on.
        port: port to listen on.
        auth: (user, password) that every page and API call must log in with
            (Gradio's own login), or None for an open app.
        reader: CrossEncoder for the reader, None for the shipped one, "none" for none.
        backend, uri, collection: where passages are retrieved (Engine.open); a
            Milvus collection must already be loaded by ``qa index --backend milvus``;
            with neither folder given, the app is a thin replica reading Milvus alone.
        follow_symlinks: read corpus files through symlinks that lead outside its folder too.

    The app follows the index folder: once ``qa index`` swaps in a newer
    index, it is loaded in the background and answers come from it within
    ``Settings.index_poll_seconds``, or at once after SIGHUP (qa.index.live).

    Nothing can be uploaded (qa.web.guard refuses Gradio's upload routes,
    bodies over 4 MB and logins after a few wrong ones), and Gradio's
    temporary files live in a folder of the app's own, removed when it stops
    (Ctrl-C or SIGTERM).

    Returns:
        The exit status (0).
    """
    # Tracebacks of failed questions go to stderr, with a time to match them by.
    # WARNING, not INFO: the tracebacks are logged as errors, and INFO would let
    # every library's load messages and HTTP requests into the same stream.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    engine = Engine.open(
        corpus_dir,
        index_dir,
        model=model,
        progress=True,
        note=_print_note,
        reader=reader,
        backend=backend,
        uri=uri,
        collection=collection,
        follow_symlinks=follow_symlinks,
    )
    # A thread loads a newer index, so no question waits for it; SIGHUP asks it to look now.
    engine.live.watch(wake_signal=signal.SIGHUP)
    with _private_temp_folder():
        app = build_app(engine)
        app.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
        _stop_on_sigterm()
        app.launch(
            server_name=host,
            server_port=port,
            css=_CSS,
            ssr_mode=False,
            show_error=False,
            auth=auth,
            # Uploads are refused by RequestGuard; Gradio's own cap is for a route it does not know.
            max_file_size=GRADIO_MAX_FILE_SIZE,
            app_kwargs={"middleware": [Middleware(RequestGuard)]},
        )
    return 0


@contextlib.contextmanager
def _private_temp_folder() -> Iterator[Path]:
    """Point Gradio's temporary files (GRADIO_TEMP_DIR) at a folder of this app's own, removed when it stops.

    Gradio's default, ``$TMPDIR/gradio``, is shared by every Gradio app and
    never emptied; a private folder (inside GRADIO_TEMP_DIR when it is set,
    else in the temporary folder) can be removed whole without touching
    another app's files.
    """
    folder = Path(tempfile.mkdtemp(prefix="newsqa-gradio-", dir=os.environ.get("GRADIO_TEMP_DIR") or None))
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before
        shutil.rmtree(folder, ignore_errors=True)


def _stop_on_sigterm() -> None:
    """Stop on SIGTERM as on Ctrl-C: Gradio closes the server and the clean-up after it runs.

    Python's default for SIGTERM ends the process at once, with no ``finally``.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def _print_note(message: str) -> None:
    """Tell the person starting the app each notice (a build, an update, a skipped file) on stderr."""
    print(f"qa: {message}", file=sys.stderr, flush=True)
