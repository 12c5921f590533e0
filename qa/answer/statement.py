"""Statement extracts: an attribution and the quote it introduces, shown as one extract.

News puts who spoke and what they said in neighbouring sentences ("Max
Tweedie says training is a necessity." then "There's no question that ...").
A reader asking "what did he say" needs both: the attribution alone repeats the
question, the quote alone does not say who spoke. When the chosen sentence is
one half of such a pair, the extract becomes the pair: contiguous and verbatim
from the article, one citation, with the answer's span inside it.
"""

from __future__ import annotations

import re

# Verbs and phrases that attribute speech in news copy.
_SPEECH = re.compile(
    r"\b(said|says|say|told|tells|added|adds|explained|warned|argued|wrote|asked|insisted|"
    r"according to|stated|claimed|admitted|recalled)\b",
    re.IGNORECASE,
)
_OPENS_QUOTE = re.compile('^\\s*["\u201c\u2018]')
# A quotation mark, straight or curly: the sentence quotes someone.
QUOTE = re.compile(r"[\"“”]")
# A quoted stretch: what the speaker said, whose own verbs ("we asked") name no speaker.
_QUOTED = re.compile('["\u201c\u2018][^"\u201d\u2019]*["\u201d\u2019]?')
# A statement longer than this is left as the one sentence: a long pair buries
# the answer and the median extract must stay short (issue 15 asks <= 250).
MAX_STATEMENT_CHARS = 400


def statement_direction(sentence: str, before: str, after: str) -> int:
    """Where the rest of ``sentence``'s statement is: 1 the next sentence, -1 the one before, 0 none.

    Forward: an attribution with no quote of its own ("X said:", "X says
    training is a necessity.") followed by a sentence that opens a quote.
    Backward: a sentence that opens a quote and names no speaker, after an
    attribution.
    """
    introduces = sentence.rstrip().endswith(":") or (_SPEECH.search(sentence) and not QUOTE.search(sentence))
    if (
        introduces
        and after
        and _OPENS_QUOTE.match(after)
        and len(sentence) + len(after) < MAX_STATEMENT_CHARS
    ):
        return 1
    if before and _OPENS_QUOTE.match(sentence) and not _SPEECH.search(_QUOTED.sub(" ", sentence)):
        attributes = before.rstrip().endswith(":") or bool(_SPEECH.search(before))
        if attributes and len(sentence) + len(before) < MAX_STATEMENT_CHARS:
            return -1
    return 0
