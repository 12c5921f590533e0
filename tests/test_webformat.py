"""The web app's HTML, built by hand-checked pure functions: exact strings, escaping included."""

from __future__ import annotations

import pytest

from qa.errors import InputError
from qa.records import Answer, Article, Citation, Difference, ReportedValue, Result, RetrievedPassage
from qa.web.html import (
    CiteRef,
    also_reported_html,
    article_html,
    citation_line,
    cite_key,
    cite_link_html,
    compare_html,
    compare_rows,
    differences_html,
    extract_html,
    filters_note,
    highlight_html,
    message_html,
    parse_cite_key,
    question_html,
    reply_html,
    safe_url,
    sources_html,
)

BODY = "Intro line.\n\nAuckland Pride director Max Tweedie says training is a necessity. More."
# The sentence starts after "Intro line.\n\n" (11 + 2 characters) and is 65 long: 13:78.
SENT_START, SENT_END = 13, 13 + len("Auckland Pride director Max Tweedie says training is a necessity.")
SENTENCE = BODY[SENT_START:SENT_END]


def citation(
    doc_id: str = "d1", outlet: str = "1 NEWS", date: str = "2020-03-09", title: str = ""
) -> Citation:
    return Citation(
        doc_id=doc_id,
        outlet=outlet,
        date=date,
        title=title,
        url="https://example.org/a",
        start=SENT_START,
        end=SENT_END,
        text=SENTENCE,
        passage_start=0,
        passage_end=len(BODY),
        passage=BODY,
    )


def answer(*citations: Citation) -> Answer:
    # "Max Tweedie" sits at 24:35 of the sentence.
    return Answer(SENTENCE, 0.7, citations or (citation(),), span_start=24, span_end=35)


def passage(doc_id: str = "d1", start: int = 0, end: int = len(BODY)) -> RetrievedPassage:
    return RetrievedPassage(0, doc_id, start, end, BODY[start:end], 1.0, "1 NEWS", "2020-03-09", "", "")


def result(answers: tuple[Answer, ...], passages: tuple[RetrievedPassage, ...] = ()) -> Result:
    return Result("q", answers, passages, abstained=not answers, latency_ms=1.0)


def test_cite_key_round_trip():
    assert cite_key("003_ab", 2138, 2267) == "003_ab:2138:2267"
    assert parse_cite_key("003_ab:2138:2267") == CiteRef("003_ab", 2138, 2267)
    # Only the last two colons separate the offsets.
    assert parse_cite_key("a:b:1:2") == CiteRef("a:b", 1, 2)


@pytest.mark.parametrize("key", ["", "../../etc/passwd", "d1:1", "d1:-1:5", ":1:2", "d1:one:2"])
def test_parse_cite_key_rejects_anything_else(key):
    with pytest.raises(InputError, match="not a citation link"):
        parse_cite_key(key)


def test_safe_url_allows_only_http():
    assert safe_url(" https://www.tvnz.co.nz/x ") == "https://www.tvnz.co.nz/x"
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("file:///etc/passwd") is None
    assert safe_url("/local/path") is None


def test_citation_line():
    assert (
        citation_line(1, citation(title="Police apologise")) == "[1] 1 NEWS · 9 March 2020 · Police apologise"
    )
    # No title: outlet and date only.
    assert citation_line(2, citation(outlet="NZ Herald", date="2020-03-08")) == "[2] NZ Herald · 8 March 2020"


def test_cite_link_escapes_key_and_label():
    assert cite_link_html('d"1:0:5', "<b>") == '<a class="cite" href="#cite:d%221:0:5">&lt;b&gt;</a>'


def test_highlight_html_escapes_around_and_inside_the_mark():
    assert highlight_html("a <b> & c", 2, 5) == "a <mark>&lt;b&gt;</mark> &amp; c"
    assert highlight_html("abc", 1, 2, "cited-span") == 'a<mark id="cited-span">b</mark>c'
    # An empty or inverted span highlights nothing.
    assert highlight_html("<x>", 2, 2) == "&lt;x&gt;"


def test_extract_html_highlights_the_answer_span():
    assert extract_html(answer()) == (
        "Auckland Pride director <mark>Max Tweedie</mark> says training is a necessity."
    )


def test_also_reported_html():
    lead = citation()
    other = Citation(
        doc_id="d2",
        outlet="NZ Herald",
        date="2020-03-08",
        title="",
        url="",
        start=10,
        end=20,
        text="x",
        passage_start=0,
        passage_end=30,
        passage="",
    )
    assert also_reported_html([lead, other]) == (
        'Also reported by <a class="cite" href="#cite:d2:10:20">NZ Herald, 8 March 2020</a>.'
    )
    assert also_reported_html([lead]) == ""


def test_question_html_is_inert_text():
    assert question_html("<img src=x onerror=alert(1)>\n  why?") == (
        '<div class="question">&lt;img src=x onerror=alert(1)&gt; why?</div>'
    )


def test_message_html_keeps_text_and_line_breaks_on_one_line():
    assert message_html("a <b>\nc") == '<div class="reply"><div class="note">a &lt;b&gt;<br>c</div></div>'


def test_filters_note():
    assert filters_note(["NZ Herald"], "2020-03-09", None) == "only NZ Herald; from 2020-03-09"
    assert filters_note([], None, None) == ""


def test_reply_html_numbers_citations_and_highlights_spans():
    lead = citation(title="Police <apologise>")
    assert reply_html(result((answer(lead),))) == (
        '<div class="reply"><ol class="answers"><li><div class="extract">'
        "Auckland Pride director <mark>Max Tweedie</mark> says training is a necessity.</div>"
        '<div class="cites"><a class="cite" href="#cite:d1:13:78">'
        "[1] 1 NEWS · 9 March 2020 · Police &lt;apologise&gt;</a></div></li></ol></div>"
    )


def test_reply_html_abstains_plainly_with_related_passages():
    html = reply_html(result((), (passage(start=0, end=11),)), filters="only 1 NEWS")
    assert html == (
        '<div class="reply"><div class="abstain">I could not find an answer to that in this news archive.'
        '</div><div>Possibly related:</div><ul class="related"><li><div>'
        '<a class="cite" href="#cite:d1:0:11">1 NEWS · 9 March 2020</a></div>'
        '<div class="snippet">Intro line.</div></li></ul>'
        '<div class="note">Filters: only 1 NEWS.</div></div>'
    )


def test_chat_html_never_contains_a_raw_line_break():
    # A blank line would end the HTML block and hand the rest to Markdown.
    assert "\n" not in reply_html(result((), (passage(),)))


def test_sources_html_highlights_the_cited_sentence_in_its_passage():
    html = sources_html(result((answer(),), (passage(),)))
    assert html == (
        '<ol class="sources"><li class="source"><div class="meta">1 NEWS · 9 March 2020</div>'
        '<div class="title"><a class="cite" href="#cite:d1:13:78">Open the article</a></div>'
        '<div class="passage">Intro line.\n\n<mark>'
        "Auckland Pride director Max Tweedie says training is a necessity.</mark> More.</div></li></ol>"
    )


def test_article_html_highlights_and_anchors_the_span():
    article = Article(
        "d1", "Before <x>. Cited & true. After.", "1 NEWS", "2020-03-09", "T", "https://e.org/1"
    )
    assert article_html(article, 12, 25) == (
        '<div class="article"><h3>T</h3><div class="meta">1 NEWS · 9 March 2020</div>'
        '<div class="link">Original: <a href="https://e.org/1" target="_blank" rel="noopener noreferrer">'
        "https://e.org/1</a></div>"
        '<div class="article-body">Before &lt;x&gt;. <mark id="cited-span">Cited &amp; true.</mark>'
        " After.</div></div>"
    )


def test_article_html_shows_a_non_http_url_as_text():
    article = Article("d1", "Body.", "1 NEWS", "2020-03-09", "", "javascript:alert(1)")
    assert '<div class="link">Original: javascript:alert(1)</div>' in article_html(article, 0, 5)


@pytest.mark.parametrize(("start", "end"), [(0, 0), (3, 2), (-1, 2), (0, 6)])
def test_article_html_rejects_a_span_outside_the_article(start, end):
    with pytest.raises(InputError, match="outside article"):
        article_html(Article("d1", "Body."), start, end)


def test_compare_rows_order_by_date_then_outlets_without_answer():
    star = citation(doc_id="s", outlet="Star Observer", date="2020-03-11")
    herald = citation(doc_id="h", outlet="NZ Herald", date="2020-03-08")
    rows = compare_rows(
        [
            ("1 NEWS", result(())),
            ("Star Observer", result((answer(star),))),
            ("NZ Herald", result((answer(herald),))),
        ]
    )
    assert [r.outlet for r in rows] == ["NZ Herald", "Star Observer", "1 NEWS"]
    assert rows[2].answer is None


def test_compare_html():
    rows = compare_rows([("1 NEWS", result((answer(),))), ("NZ Herald", result(()))])
    assert compare_html("Who <leads>?", rows) == (
        '<div class="compare"><div class="meta">How each outlet reported: Who &lt;leads&gt;?</div>'
        "<table><thead><tr><th>Outlet</th><th>Date</th><th>Best extract</th></tr></thead><tbody>"
        "<tr><th>1 NEWS</th><td>9 March 2020</td><td>Auckland Pride director <mark>Max Tweedie</mark>"
        ' says training is a necessity. <a class="cite" href="#cite:d1:13:78">[open]</a></td></tr>'
        '<tr><th>NZ Herald</th><td>—</td><td class="none">No answer in this outlet.</td></tr>'
        "</tbody></table></div>"
    )


def _difference() -> Difference:
    # "Max Tweedie" (13 + 24 : 13 + 35) in d1 against another name in d2; d3 agrees with d1.
    return Difference(
        "person",
        (
            ReportedValue("Max Tweedie", "max tweedie", "d1", "1 NEWS", "2020-03-09", 37, 48),
            ReportedValue("Tweedie", "tweedie", "d3", "NZ Herald", "2020-03-08", 5, 12),
            ReportedValue("Jo <Smith>", "jo smith", "d2", "Star Observer", "2020-03-11", 0, 10),
        ),
    )


def test_differences_html_lists_each_value_as_a_link_to_its_span():
    out = differences_html(_difference())
    assert out.startswith('<div class="differ"><strong>Sources differ on this name:</strong> ')
    assert '<a class="cite" href="#cite:d1:37:48">Max Tweedie</a> (1 NEWS, 9 March 2020)' in out
    assert '<a class="cite" href="#cite:d2:0:10">Jo &lt;Smith&gt;</a> (Star Observer, 11 March 2020)' in out
    assert "<Smith>" not in out


def test_reply_html_shows_the_difference_under_the_answers():
    differing = Result("q", (answer(),), (), abstained=False, latency_ms=1.0, differences=(_difference(),))
    out = reply_html(differing)
    assert out.index('<ol class="answers">') < out.index('<div class="differ">')
    assert 'class="differ"' not in reply_html(result((answer(),)))


def test_compare_marks_the_value_an_outlet_gives_and_offers_the_closest_passage_of_an_outlet_without():
    rows = compare_rows([("1 NEWS", result((answer(),))), ("NZ Herald", result((), (passage("d3"),)))])
    out = compare_html("Who leads?", rows, (_difference(),))
    assert '<span class="differs">Auckland Pride director <mark>Max Tweedie</mark>' in out
    assert "Outlets differ: Max Tweedie here; Jo &lt;Smith&gt; elsewhere." in out
    assert '<div class="closest">Closest passage (not an answer): Intro line.' in out
    assert '<a class="cite" href="#cite:d3:0:' in out


def test_compare_shows_the_value_an_outlet_gives_even_when_the_reader_passed_none_of_its_sentences():
    value = ReportedValue(
        "$43,350", "$43350", "fox", "Fox News", "2013-02-20", 40, 47, "Items including a $43,350 watch.", 22
    )
    other = ReportedValue("$43,000", "$43000", "huff", "HuffPost", "2013-02-20", 5, 12)
    rows = compare_rows([("Fox News", result(()))], (Difference("money", (value, other)),))
    assert rows[0].stated == value
    out = compare_html("How much?", rows, (Difference("money", (value, other)),))
    assert '<span class="differs">Items including a <mark>$43,350</mark> watch.</span>' in out
    assert "Outlets differ: $43,350 here; $43,000 elsewhere." in out
    assert "No answer in this outlet" not in out
