"""Generate a news archive of any size with a real archive's vocabulary shape.

Random words drawn uniformly would make BM25 look faster or slower than on
news: what matters is the shape of the vocabulary. A real archive has a few
words everywhere ("the", "said"), a long tail seen once (names, places,
figures), about one token in six capitalised and one in thirty a number. The
generator draws words from a Zipf law over the real text's own lowercase
words followed by made-up rare ones, names from a Zipf law over the real
text's capitalised words followed by made-up names, and numbers in news forms
(counts, years, amounts, decimals, times, percentages); sentence lengths
follow the real text's. ``compare_with_real`` measures both on equal token
counts (rank-frequency slope, hapax fraction, capitalised and number shares,
sentence and passage length) and benchmarks/results/scale.json stores it.

The archive is JSON Lines, one article a line, with keys id, text, outlet,
date, title, url. Seeded and deterministic; about 1M passages' worth (500k
articles) in a few minutes.

Usage: python benchmarks/archive_gen.py --articles 1000 --out build/archive.jsonl [--compare]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

# Token shares, measured on the real text (benchmarks/real_text.py:
# 65k tokens): 15.7% capitalised, of which sentence starts are about 4.5
# points (one in 22 tokens), so names are about 11%; 3.6% contain a digit.
NAME_SHARE = 0.11
NUMBER_SHARE = 0.036
# Zipf exponents and the repeat share below were tuned together (a grid of a
# dozen settings, compare_with_real) so that 65k generated tokens have about
# the real text's number of word types (11.2k), hapax fraction (54%) and
# rank-frequency slope (-0.95 on a log-log fit over all ranks; the closest
# setting reaches -0.82: the real head is steeper than one Zipf law).
WORD_EXPONENT = 1.2
NAME_EXPONENT = 0.95
# Share of tokens that repeat an earlier token of the same article: news
# names a person, place or company and comes back to it, so a rare word is
# seldom seen only once in its article. Without it, a Zipf law that gives the
# real number of word types gives far too many seen once (78% against 54%).
REPEAT_SHARE = 0.45
# Vocabulary sizes: far more made-up rare words and names than a 1M-passage
# archive uses, so new types keep appearing as the archive grows.
WORD_TYPES = 2_000_000
NAME_TYPES = 1_000_000
# Sentence length in words: the real text's mean 22.0 and s.d. 10.7, as a
# gamma distribution (always positive, right-skewed like real sentences).
SENTENCE_MEAN = 22.0
SENTENCE_SD = 10.7
# Sentences an article; wire stories run 8 to 20.
ARTICLE_SENTENCES = (8, 21)
# Comma after a token, so text is not one unbroken run.
COMMA_SHARE = 0.05
OUTLETS = 60
FIRST_DATE = dt.date(2015, 1, 1)
DAYS = 3653
SEED = 20260901
# Words with inner apostrophes (straight or typographic), hyphens, decimal points and thousands commas.
TOKEN = re.compile(r"\w+(?:[.,'\u2019-]\w+)*")
_SYLLABLES = ("ka", "lo", "mi", "nu", "te", "ra", "so", "vi", "pe", "du", "go", "ze", "an", "el", "or", "is")


@dataclass(frozen=True)
class GeneratedArticle:
    """One generated article, with its sentences so passages can be cut without re-segmenting."""

    id: str
    sentences: tuple[str, ...]
    outlet: str
    date: str
    title: str
    url: str

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    def to_json(self) -> str:
        row = {"id": self.id, "text": self.text, "outlet": self.outlet, "date": self.date}
        return json.dumps(row | {"title": self.title, "url": self.url}, ensure_ascii=False)


@dataclass(frozen=True)
class TextStats:
    """The vocabulary-shape figures compared between real and generated text."""

    tokens: int
    types: int
    zipf_slope: float
    hapax_fraction: float
    capitalised_share: float
    number_share: float
    sentence_words_mean: float
    passage_words_mean: float


class ArchiveGenerator:
    """Draws articles; the vocabularies are built once from the real text's word lists."""

    def __init__(self, real_words: Sequence[str], real_names: Sequence[str], seed: int = SEED) -> None:
        self.seed = seed
        self.real_words = list(real_words)
        self.real_names = list(real_names)

    @cached_property
    def words(self) -> np.ndarray:
        return np.array(self.real_words + _made_up(WORD_TYPES - len(self.real_words), capital=False), object)

    @cached_property
    def names(self) -> np.ndarray:
        return np.array(self.real_names + _made_up(NAME_TYPES - len(self.real_names), capital=True), object)

    @cached_property
    def outlets(self) -> list[str]:
        kinds = ("Herald", "Times", "Post", "Bulletin", "Courier", "News")
        return [
            f"The {name} {kinds[i % len(kinds)]}" for i, name in enumerate(_made_up(OUTLETS, capital=True))
        ]

    def articles(self, count: int, batch: int = 5_000) -> Iterator[GeneratedArticle]:
        """``count`` articles, the same ones for the same seed whatever ``batch`` is used."""
        word_cdf = _zipf_cdf(len(self.words), WORD_EXPONENT)
        name_cdf = _zipf_cdf(len(self.names), NAME_EXPONENT)
        for first in range(0, count, batch):
            rng = np.random.default_rng([self.seed, first])
            yield from self._batch(rng, first, min(batch, count - first), word_cdf, name_cdf)

    def _batch(
        self, rng: np.random.Generator, first: int, count: int, word_cdf: np.ndarray, name_cdf: np.ndarray
    ) -> Iterator[GeneratedArticle]:
        sentence_counts = rng.integers(*ARTICLE_SENTENCES, size=count)
        shape = (SENTENCE_MEAN / SENTENCE_SD) ** 2
        lengths = np.maximum(rng.gamma(shape, SENTENCE_MEAN / shape, size=int(sentence_counts.sum())), 3)
        lengths = lengths.round().astype(np.int64)
        article_of_token = np.repeat(np.repeat(np.arange(count), sentence_counts), lengths)
        tokens = self._tokens(rng, article_of_token, word_cdf, name_cdf)
        ends = np.cumsum(lengths)
        sentences = []
        for end, length in zip(ends, lengths, strict=True):
            words = tokens[end - length : end]
            words[0] = words[0][:1].upper() + words[0][1:]
            sentences.append(" ".join(words) + ".")
        outlets = rng.integers(0, OUTLETS, size=count)
        days = rng.integers(0, DAYS, size=count)
        start = 0
        for i in range(count):
            body = tuple(sentences[start : start + sentence_counts[i]])
            start += sentence_counts[i]
            date = FIRST_DATE + dt.timedelta(days=int(days[i]))
            title = body[0].split(" ")[: 6 + i % 5]
            doc_id = f"gen-{first + i:07d}"
            outlet = self.outlets[int(outlets[i])]
            slug = outlet.lower().replace(" ", "-")
            yield GeneratedArticle(
                doc_id, body, outlet, date.isoformat(), " ".join(title).rstrip(".,"),
                f"https://{slug}.example/{date:%Y/%m/%d}/{doc_id}",
            )  # fmt: skip

    def _tokens(
        self,
        rng: np.random.Generator,
        article_of_token: np.ndarray,
        word_cdf: np.ndarray,
        name_cdf: np.ndarray,
    ) -> list[str]:
        n = len(article_of_token)
        kind = rng.random(n)
        tokens = self.words[np.searchsorted(word_cdf, rng.random(n))]
        is_name = kind < NAME_SHARE
        tokens[is_name] = self.names[np.searchsorted(name_cdf, rng.random(int(is_name.sum())))]
        is_number = (kind >= NAME_SHARE) & (kind < NAME_SHARE + NUMBER_SHARE)
        tokens[is_number] = _numbers(rng, int(is_number.sum()))
        # Burstiness: some tokens repeat an earlier token of the same article.
        first = np.searchsorted(article_of_token, article_of_token)
        position = np.arange(n)
        repeat = np.flatnonzero((rng.random(n) < REPEAT_SHARE) & (position > first))
        source = first[repeat] + (rng.random(len(repeat)) * (repeat - first[repeat])).astype(np.int64)
        tokens[repeat] = tokens[source]
        comma = np.flatnonzero(rng.random(n) < COMMA_SHARE)
        tokens[comma] = [t + "," for t in tokens[comma]]
        return tokens.tolist()


def _zipf_cdf(types: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, types + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _made_up(count: int, capital: bool) -> list[str]:
    """``count`` distinct pronounceable made-up words: rank written in base-16 syllables."""
    words = []
    for rank in range(count):
        parts, value = [], rank + 16**2  # at least three syllables, so no real short word recurs
        while value:
            value, digit = divmod(value, 16)
            parts.append(_SYLLABLES[digit])
        word = "".join(parts)
        words.append(word.capitalize() if capital else word)
    return words


def _numbers(rng: np.random.Generator, n: int) -> list[str]:
    """Numbers in the forms news uses: counts, years, thousands, decimals, times, percentages."""
    forms = rng.integers(0, 6, size=n)
    a = rng.integers(0, 10_000_000, size=n)
    out = []
    for form, value in zip(forms.tolist(), a.tolist(), strict=True):
        if form == 0:
            out.append(str(value % 100))
        elif form == 1:
            out.append(str(1950 + value % 75))
        elif form == 2:
            out.append(f"{value % 1_000_000:,}")
        elif form == 3:
            out.append(f"{value % 1000 / 10:.1f}")
        elif form == 4:
            out.append(f"{value % 12 + 1}.{value % 60:02d}{'am' if value % 2 else 'pm'}")
        else:
            out.append(f"{value % 100}%")
    return out


def text_stats(documents: Sequence[Sequence[str]]) -> TextStats:
    """Vocabulary-shape figures for documents given as lists of sentences.

    Passages are windows of 3 sentences, as the engine cuts them.
    """
    tokens = [t for sentences in documents for s in sentences for t in TOKEN.findall(s)]
    counts = collections.Counter(t.lower() for t in tokens)
    frequencies = np.array(sorted(counts.values(), reverse=True), dtype=np.float64)
    ranks = np.arange(1, len(frequencies) + 1)
    slope = float(np.polyfit(np.log(ranks), np.log(frequencies), 1)[0])
    sentence_words = [len(TOKEN.findall(s)) for sentences in documents for s in sentences]
    passage_words = [
        sum(sentence_words_of[i : i + 3])
        for sentences in documents
        for sentence_words_of in [[len(TOKEN.findall(s)) for s in sentences]]
        for i in range(0, max(len(sentences) - 3, 0) + 1, 2)
    ]
    return TextStats(
        tokens=len(tokens),
        types=len(counts),
        zipf_slope=round(slope, 3),
        hapax_fraction=round(sum(1 for v in counts.values() if v == 1) / len(counts), 3),
        capitalised_share=round(sum(t[0].isupper() for t in tokens) / len(tokens), 4),
        number_share=round(sum(any(ch.isdigit() for ch in t) for t in tokens) / len(tokens), 4),
        sentence_words_mean=round(float(np.mean(sentence_words)), 2),
        passage_words_mean=round(float(np.mean(passage_words)), 2),
    )


def real_sentences() -> list[list[str]]:
    """The real documents (benchmarks/real_text.py), each as its sentences."""
    from real_text import real_documents

    from qa.index.split import split_sentences

    return [[s.text for s in split_sentences(d.doc_id, d.text)] for d in real_documents()]


def generator_from_real(documents: Sequence[Sequence[str]], seed: int = SEED) -> ArchiveGenerator:
    """A generator whose common words and names start with the real text's, most frequent first."""
    tokens = [t for sentences in documents for s in sentences for t in TOKEN.findall(s)]
    words = collections.Counter(t for t in tokens if t.isalpha() and t.islower())
    names = collections.Counter(t for t in tokens if t.isalpha() and t[0].isupper() and not t.isupper())
    return ArchiveGenerator([w for w, _ in words.most_common()], [n for n, _ in names.most_common()], seed)


def compare_with_real(seed: int = SEED) -> dict[str, dict[str, float]]:
    """Text statistics of the real text and of generated articles with the same number of tokens."""
    real = real_sentences()
    real_stats = text_stats(real)
    generated: list[tuple[str, ...]] = []
    tokens = 0
    for article in generator_from_real(real, seed).articles(10**9, batch=200):
        generated.append(article.sentences)
        tokens += sum(len(TOKEN.findall(s)) for s in article.sentences)
        if tokens >= real_stats.tokens:
            break
    return {"real": real_stats.__dict__, "generated": text_stats(generated).__dict__}


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Write a generated news archive (JSON Lines: id, text, outlet, date, title, url) "
        "with a real archive's vocabulary shape.",
        epilog="example: python benchmarks/archive_gen.py --articles 150000 --out build/a.jsonl --compare",
    )
    parser.add_argument("--articles", type=int, default=1000, help="articles to write (default 1000)")
    parser.add_argument("--out", type=Path, help="JSON Lines file to write")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    parser.add_argument("--compare", action="store_true", help="print the comparison with the real text")
    args = parser.parse_args()
    if args.compare:
        comparison = compare_with_real(args.seed)
        print(f"{'statistic':<22}{'real':>12}{'generated':>12}")
        for key, value in comparison["real"].items():
            print(f"{key:<22}{value:>12}{comparison['generated'][key]:>12}")
    if args.out:
        generator = generator_from_real(real_sentences(), args.seed)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", encoding="utf-8") as out:
            for article in tqdm(generator.articles(args.articles), total=args.articles, unit="article"):
                out.write(article.to_json() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
