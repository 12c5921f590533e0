"""HTML and text for the web app, built from engine records. Pure functions.

Every string that comes from a user or an article goes through
``html.escape`` here, so the UI layer never renders untrusted markup. Output
is kept on a single line: the chat renders messages as Markdown, and a blank
line inside an HTML block would hand the rest of the block to the Markdown
parser.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from qa.errors import InputError
from qa.records import UNDATED, Answer, Article, Citation, Difference, ReportedValue, Result, RetrievedPassage
from qa.web.labels import citation_label, format_date, value_groups

# The element the article view scrolls to when it opens at a citation.
CITED_SPAN_ID = "cited-span"
# Citation links point at "#cite:<key>"; see cite_link_html.
CITE_HREF_PREFIX = "#cite:"
# Characters of a passage shown for a "possibly related" suggestion.
SNIPPET_CHARS = 220
_SEP = " · "


@dataclass(frozen=True)
class CiteRef:
    """A span of one article that a link in the UI points at."""

    doc_id: str
    start: int
    end: int


def cite_key(doc_id: str, start: int, end: int) -> str:
    """The value a citation link carries: ``"doc_id:start:end"``."""
    return f"{doc_id}:{start}:{end}"


def parse_cite_key(key: str) -> CiteRef:
    """Read a key made by :func:`cite_key`; raises InputError for anything else.

    Args:
        key: the value sent by the browser when a citation is clicked.

    Returns:
        The article id and span; the caller checks them against the index.
    """
    parts = str(key).rsplit(":", 2)
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not parts[2].isdigit():
        raise InputError(f"not a citation link: {key!r}")
    return CiteRef(parts[0], int(parts[1]), int(parts[2]))


def safe_url(url: str) -> str | None:
    """``url`` if it is an absolute http(s) address, else None (never a link to ``javascript:``)."""
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def citation_line(number: int, citation: Citation) -> str:
    """ "[1] 1 NEWS · 9 March 2020 · title" as plain text."""
    return f"[{number}] {citation_label(citation, _SEP)}"


def highlight_html(text: str, start: int, end: int, anchor_id: str | None = None) -> str:
    """``text`` escaped, with ``text[start:end]`` wrapped in ``<mark>``.

    Args:
        text: plain text (a sentence, passage or article body).
        start, end: the span to highlight, as offsets into ``text``.
        anchor_id: an id for the ``<mark>`` so the page can scroll to it.
    """
    start, end = max(0, start), min(len(text), end)
    if start >= end:
        return html.escape(text)
    id_attr = f' id="{html.escape(anchor_id)}"' if anchor_id else ""
    return (
        f"{html.escape(text[:start])}<mark{id_attr}>{html.escape(text[start:end])}</mark>"
        f"{html.escape(text[end:])}"
    )


def cite_link_html(key: str, label: str) -> str:
    """A link that opens the article span ``key`` in the article view.

    The key rides in the fragment of ``href``: the chat's HTML sanitizer keeps
    ``href`` but drops ``data-`` attributes. The page's click handler reads it
    and stops the browser from following the link.
    """
    href = CITE_HREF_PREFIX + quote(key, safe=":")
    return f'<a class="cite" href="{html.escape(href)}">{html.escape(label)}</a>'


def extract_html(answer: Answer) -> str:
    """The answering sentence, escaped, with its short answer span highlighted."""
    return highlight_html(answer.text, answer.span_start, answer.span_start + len(answer.span))


def _cite_link(citation: Citation, label: str) -> str:
    return cite_link_html(cite_key(citation.doc_id, citation.start, citation.end), label)


def _external_link(url: str, label: str) -> str:
    target = safe_url(url)
    if target is None:
        return html.escape(url)
    attrs = f'href="{html.escape(target)}" target="_blank" rel="noopener noreferrer"'
    return f"<a {attrs}>{html.escape(label)}</a>"


def _one_line(markup: str) -> str:
    """Chat markup with the text's line breaks as ``<br>``; see the module docstring."""
    return markup.replace("\r\n", "\n").replace("\n", "<br>")


def question_html(question: str) -> str:
    """The user's message, shown as text whatever it contains."""
    return f'<div class="question">{html.escape(" ".join(question.split()))}</div>'


def message_html(text: str) -> str:
    """A plain reply (an error, a hint), shown as text."""
    return _one_line(f'<div class="reply"><div class="note">{html.escape(text)}</div></div>')


def filters_note(outlets: Sequence[str], since: str | None, until: str | None) -> str:
    """ "only NZ Herald; from 2020-03-09" describing active filters; "" when none."""
    parts = []
    if outlets:
        parts.append("only " + ", ".join(outlets))
    if since:
        parts.append(f"from {since}")
    if until:
        parts.append(f"until {until}")
    return "; ".join(parts)


def also_reported_html(citations: Sequence[Citation]) -> str:
    """ "Also reported by NZ Herald, 8 March 2020." for the citations after the lead, each a link.

    Returns "" when the lead citation is the only one.
    """
    others = [_cite_link(c, f"{c.outlet}, {format_date(c.date)}") for c in citations[1:]]
    return f"Also reported by {'; '.join(others)}." if others else ""


def _answer_html(number: int, answer: Answer) -> str:
    lead = answer.citations[0]
    also = also_reported_html(answer.citations)
    return (
        f'<li><div class="extract">{extract_html(answer)}</div>'
        f'<div class="cites">{_cite_link(lead, citation_line(number, lead))}</div>'
        + (f'<div class="also">{also}</div>' if also else "")
        + "</li>"
    )


def _related_html(passage: RetrievedPassage) -> str:
    # A preview, not an extract: whitespace is collapsed and long text cut.
    text = " ".join(passage.text.split())
    snippet = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"
    label = _SEP.join(p for p in (passage.outlet, format_date(passage.date), passage.title) if p)
    key = cite_key(passage.doc_id, passage.start, passage.end)
    return (
        f'<li><div>{cite_link_html(key, label)}</div><div class="snippet">{html.escape(snippet)}</div></li>'
    )


def reply_html(result: Result, filters: str = "", related: int = 3) -> str:
    """The chat reply to one result: extracts with highlighted spans and numbered citations.

    Args:
        result: what the engine returned.
        filters: a description of the filters in force (see :func:`filters_note`).
        related: how many passages to offer as "possibly related" when the engine abstains.
    """
    notes = [*result.notices, *([f"Filters: {filters}."] if filters else [])]
    notes_html = "".join(f'<div class="note">{html.escape(n)}</div>' for n in notes)
    if result.abstained:
        body = '<div class="abstain">I could not find an answer to that in this news archive.</div>'
        if result.passages and related > 0:
            items = "".join(_related_html(p) for p in result.passages[:related])
            body += f'<div>Possibly related:</div><ul class="related">{items}</ul>'
        return _one_line(f'<div class="reply">{body}{notes_html}</div>')
    items = "".join(_answer_html(n, a) for n, a in enumerate(result.answers, start=1))
    differs = "".join(differences_html(d) for d in result.differences)
    return _one_line(f'<div class="reply"><ol class="answers">{items}</ol>{differs}{notes_html}</div>')


# What a difference is about, by the kind of its values.
_DIFFERENCE_NOUNS = {"date": "date", "time": "time", "person": "name", "place": "place"}


def differences_html(difference: Difference) -> str:
    """ "Sources differ on this figure: $43,350 (Fox News, 20 February 2013) vs $43,000 (HuffPost, ...)".

    Each value opens its article at the value; articles giving the same value share one entry.
    """
    listed = " vs ".join(
        f"{cite_link_html(cite_key(group[0].doc_id, group[0].start, group[0].end), group[0].text)} ("
        + "; ".join(f"{html.escape(v.outlet)}, {html.escape(format_date(v.date))}" for v in group)
        + ")"
        for group in value_groups(difference)
    )
    noun = _DIFFERENCE_NOUNS.get(difference.kind, "figure")
    return f'<div class="differ"><strong>Sources differ on this {noun}:</strong> {listed}</div>'


def _passage_marks(passage: RetrievedPassage, answers: Sequence[Answer]) -> tuple[int, int] | None:
    """The first cited sentence that lies inside ``passage``, as offsets into its text."""
    for answer in answers:
        for c in answer.citations:
            if c.doc_id == passage.doc_id and passage.start <= c.start and c.end <= passage.end:
                return c.start - passage.start, c.end - passage.start
    return None


def sources_html(result: Result) -> str:
    """The sources panel: the passages behind a reply, best first, answer highlighted in context."""
    if not result.passages:
        return '<div class="empty">No passages matched.</div>'
    items = []
    for passage in result.passages:
        marks = _passage_marks(passage, result.answers)
        text = highlight_html(passage.text, *marks) if marks else html.escape(passage.text)
        meta = _SEP.join(p for p in (passage.outlet, format_date(passage.date)) if p)
        # The title opens the article at the cited sentence, or at the passage when none is cited.
        span = (passage.start + marks[0], passage.start + marks[1]) if marks else (passage.start, passage.end)
        key = cite_key(passage.doc_id, *span)
        link = f'<div class="link">{_external_link(passage.url, passage.url)}</div>' if passage.url else ""
        items.append(
            f'<li class="source"><div class="meta">{html.escape(meta)}</div>'
            f'<div class="title">{cite_link_html(key, passage.title or "Open the article")}</div>'
            f'{link}<div class="passage">{text}</div></li>'
        )
    return f'<ol class="sources">{"".join(items)}</ol>'


def article_html(article: Article, start: int, end: int) -> str:
    """The full article with ``body[start:end]`` highlighted and anchored for scrolling.

    Raises:
        InputError: the span does not lie inside the article.
    """
    if not 0 <= start < end <= len(article.body):
        raise InputError(f"span {start}:{end} is outside article {article.doc_id!r}")
    meta = _SEP.join(p for p in (article.outlet, format_date(article.date)) if p)
    link = (
        f'<div class="link">Original: {_external_link(article.url, article.url)}</div>' if article.url else ""
    )
    heading = f"<h3>{html.escape(article.title)}</h3>" if article.title else ""
    body = highlight_html(article.body, start, end, CITED_SPAN_ID)
    return (
        f'<div class="article">{heading}<div class="meta">{html.escape(meta)}</div>'
        f'{link}<div class="article-body">{body}</div></div>'
    )


@dataclass(frozen=True)
class CompareRow:
    """One outlet's best answer to a question.

    When the reader passed none of the outlet's sentences, ``stated`` is the value the outlet
    gives where outlets differ (qa.answer.differences found it beside the question's words),
    else ``closest`` is its closest passage, offered as not an answer.
    """

    outlet: str
    answer: Answer | None
    closest: RetrievedPassage | None = None
    stated: ReportedValue | None = None


def compare_rows(
    per_outlet: Sequence[tuple[str, Result]], differences: Sequence[Difference] = ()
) -> tuple[CompareRow, ...]:
    """One row per outlet, ordered by the date of its extract; outlets without one last."""
    values = {v.outlet: v for d in differences for v in reversed(d.values)}
    rows = [
        CompareRow(
            o,
            r.answers[0] if r.answers else None,
            r.passages[0] if r.passages else None,
            None if r.answers else values.get(o),
        )
        for o, r in per_outlet
    ]

    def order(row: CompareRow) -> tuple[int, str, str]:
        if row.answer is None and row.stated is None:
            return (2, "", row.outlet)
        date = row.answer.citations[0].date if row.answer else row.stated.date if row.stated else UNDATED
        return (1 if date == UNDATED else 0, date, row.outlet)

    return tuple(sorted(rows, key=order))


def _compare_answer_html(outlet: str, answer: Answer, differences: Sequence[Difference]) -> str:
    """The extract, with the value this outlet gives marked when outlets differ on it."""
    lead = answer.citations[0]
    extract = f"{extract_html(answer)} {_cite_link(lead, '[open]')}"
    mine = [v for d in differences for v in d.values if v.outlet == outlet]
    if not mine:
        return extract
    inside = (v for v in mine if v.doc_id == lead.doc_id and lead.start <= v.start < v.end <= lead.end)
    value = next(inside, None)
    if value is not None:
        marked = highlight_html(answer.text, value.start - lead.start, value.end - lead.start)
        extract = f'<span class="differs">{marked}</span> {_cite_link(lead, "[open]")}'
    return extract + _differs_note(value or mine[0], differences)


def _differs_note(value: ReportedValue, differences: Sequence[Difference]) -> str:
    """ "Outlets differ: $43,350 here; $43,000 elsewhere." (a name that holds another is the same name)."""
    mine = set(value.normalized.split())
    others = sorted(
        {
            v.text
            for d in differences
            for v in d.values
            if not (set(v.normalized.split()) <= mine or mine <= set(v.normalized.split()))
        }
    )
    note = f"Outlets differ: {value.text} here; {', '.join(others)} elsewhere."
    return f'<div class="differs-note">{html.escape(note)}</div>'


def _stated_html(value: ReportedValue, differences: Sequence[Difference]) -> str:
    """The sentence that gives an outlet's differing value, the value marked."""
    offset = value.start - value.sentence_start
    marked = highlight_html(value.sentence, offset, offset + len(value.text))
    link = cite_link_html(
        cite_key(value.doc_id, value.sentence_start, value.sentence_start + len(value.sentence)), "[open]"
    )
    return f'<span class="differs">{marked}</span> {link}' + _differs_note(value, differences)


def compare_html(question: str, rows: Sequence[CompareRow], differences: Sequence[Difference] = ()) -> str:
    """A table: outlet, date and that outlet's best extract for ``question``, differing values marked."""
    body = []
    for row in rows:
        if row.answer is None and row.stated is not None:
            cells = (
                f"<td>{html.escape(format_date(row.stated.date))}</td>"
                f"<td>{_stated_html(row.stated, differences)}</td>"
            )
        elif row.answer is None:
            closest = ""
            if row.closest is not None:
                text = " ".join(row.closest.text.split())
                snippet = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"
                key = cite_key(row.closest.doc_id, row.closest.start, row.closest.end)
                closest = (
                    f'<div class="closest">Closest passage (not an answer): {html.escape(snippet)} '
                    f"{cite_link_html(key, '[open]')}</div>"
                )
            cells = f'<td>—</td><td class="none">No answer in this outlet.{closest}</td>'
        else:
            lead = row.answer.citations[0]
            cells = (
                f"<td>{html.escape(format_date(lead.date))}</td>"
                f"<td>{_compare_answer_html(row.outlet, row.answer, differences)}</td>"
            )
        body.append(f"<tr><th>{html.escape(row.outlet)}</th>{cells}</tr>")
    return (
        f'<div class="compare"><div class="meta">How each outlet reported: {html.escape(question)}</div>'
        f"<table><thead><tr><th>Outlet</th><th>Date</th><th>Best extract</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
