"""A streaming build on Ray Data (``qa build-shards``): split, tag, embed and write an archive of any size.

The driver never holds all texts or vectors. It reads the input once, in a
stream, cutting it into shards and staging each pending shard as a JSON Lines
file; Ray workers then read a staged shard, split its articles
(qa.index.shard_rows, the in-process build's splitting), find entities (an
actor pool of spaCy pipelines), embed sentences and passages (an actor pool
of Embedders, on GPUs with ``ray_gpus``) and write Parquet files themselves.
Only counts come back: when all of a shard's articles are written, the driver
marks the shard done.

Input shards: each file of a set of JSON Lines/CSV archive files is one
shard, in the order given; one archive file or one folder of ``.txt`` files
(with ``sources.csv``) is cut into shards of ``shard_articles`` articles, in
file order, so a rerun cuts the same shards.

Output folder::

    manifest.json            model id, dimension, splitting settings, entity model
                             version, inputs, shard size, and each done shard's counts
    done/<shard>.json        the shard's counts; written (temporary file, then rename)
                             only after all its articles are written
    shards/<shard>/part-<first row>.parquet
                             the shard's articles, one row each (schema below)
    staging/<shard>.jsonl    a pending shard's articles, removed once it is done

A rerun skips every shard with a marker and redoes any other from scratch
(its partial output deleted first), so a build killed at any point resumes.

Row schema (one row an article; ids as qa.index.shard_rows makes them)::

    article           int64    (shard << 24) | row of the article in its shard
    doc_id, body, outlet, date (ISO or "undated"), title, url   string
    sentences         list<struct<start: int64, end: int64, entities: string>>
                      offsets into body, body[start:end] is the sentence; entities is
                      JSON [[start, end, label], ...] with offsets within the sentence
                      (null when the build ran without tagging); sentence i has id
                      (article << 16) | i
    sentence_vectors  list<list<float32>>   unit vectors, one a sentence
    passages          list<struct<passage_id, start, end, first_sentence, last_sentence: int64>>
                      first/last_sentence are sentence ids (inclusive, exclusive)
    passage_vectors   list<list<float32>>   unit vectors, one a passage
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qa.corpus.archive import archive_suffix, iter_archive
from qa.corpus.folder import FolderArticles
from qa.corpus.load import Problems
from qa.embedding.packaged import embedder_id
from qa.embedding.ray_job import LOCAL, WORKER_ENV, connect, job_error
from qa.embedding.stand_in import stand_in_id
from qa.errors import CorpusError, IndexWriteError, InputError, QAError
from qa.index.shard_rows import MAX_SHARD_ROWS, MAX_SHARDS, article_id
from qa.records import Article
from qa.settings import DEFAULT_SHARD_ARTICLES, Settings

FORMAT = "newsqa-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Articles a stage takes at a time: about 700 sentences and passages to embed,
# seconds of work on one core, so the per-batch cost of Ray is small beside it.
ARTICLES_PER_BATCH = 32
# CPUs Ray reserves for the light tasks (reading, splitting, writing) and for
# a spaCy actor, so that on a small machine the embedding actors, which need
# a whole CPU, still leave room for them to run beside.
_TASK_CPUS = 0.25
_TAG_CPUS = 0.5

Note = Callable[[str], None]


@dataclass(frozen=True)
class ShardBuildOptions:
    """How a streaming build runs; the output depends only on the model, splitting and tagging.

    Args:
        shard_articles: articles a shard when one file or folder is cut into shards.
        ray_address: ``"local"``, ``"auto"`` or ``"ray://HOST:10001"`` (see qa.embedding.ray_job.connect).
        ray_gpus: GPUs each embedding actor takes (0: CPU only); torch models then run on CUDA.
        model: embedding model as for Embedder (``None`` for the default).
        batch_size: texts an embedding actor encodes at once.
        embed_workers: embedding actors (``None``: one per GPU share, or half the CPUs).
        tag_workers: spaCy actors (``None``: a quarter of the CPUs, at least one).
        num_cpus: CPUs a local Ray may use (``None``: all).
        tag_entities: find entities; off only for measuring (entities are then null).
        stand_in_dimension: embed with the hash-seeded StandInEncoder of this
            dimension instead of the model; for measuring memory at sizes the
            model would take hours on (benchmarks/bench_stream_build.py).
    """

    shard_articles: int = DEFAULT_SHARD_ARTICLES
    ray_address: str = LOCAL
    ray_gpus: float = 0.0
    model: str | None = None
    batch_size: int = 64
    embed_workers: int | None = None
    tag_workers: int | None = None
    num_cpus: int | None = None
    tag_entities: bool = True
    stand_in_dimension: int | None = None
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        if not 1 <= self.shard_articles <= MAX_SHARD_ROWS:
            raise InputError(f"shard_articles must be in [1, {MAX_SHARD_ROWS:,}], got {self.shard_articles}")
        if self.ray_gpus < 0:
            raise InputError(f"ray_gpus must be >= 0, got {self.ray_gpus}")
        for name in ("embed_workers", "tag_workers", "num_cpus"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"{name} must be >= 1, got {value}")


@dataclass(frozen=True)
class ShardBuildReport:
    """What one run did: shards built now, shards already done, articles written and refused."""

    built: tuple[int, ...]
    already_done: tuple[int, ...]
    articles: int
    sentences: int
    passages: int
    refused: int
    problems: tuple[str, ...]
    problem_count: int


@dataclass(frozen=True)
class _Staged:
    """A pending shard, staged for the workers: its number, file and article count."""

    number: int
    path: Path
    articles: int


def build_shards(
    inputs: Sequence[Path], out: Path, options: ShardBuildOptions | None = None, note: Note | None = None
) -> ShardBuildReport:
    """Build (or resume building) the sharded output of ``inputs`` under ``out`` on Ray.

    Raises:
        CorpusError: an input is missing or not a corpus, or holds no article.
        IndexWriteError: ``out`` cannot be written, or holds something else.
        InputError: ``out`` holds a build with other settings.
        ClusterError: Ray is not installed, cannot be reached, or the job failed.
        ModelError: the embedding or entity model cannot be loaded.
    """
    options = options or ShardBuildOptions()
    tell = note or _silent
    problems = Problems()
    shards = input_shards([Path(p) for p in inputs], options.shard_articles, problems)
    out = Path(out)
    _prepare_out(out)
    header = _header(inputs, options)
    _check_manifest(out, header)
    done = _done_shards(out)
    _write_json(out / MANIFEST, {**header, "shards": [done[n] for n in sorted(done)]})
    started = connect(options.ray_address, options.num_cpus)
    try:
        staged = _stage_pending(shards, out, set(done), tell)
        if not staged and not done:
            raise CorpusError(f"no article in {', '.join(map(str, inputs))}")
        built = _run(staged, out, options, header, tell)
    finally:
        if started:
            import ray

            ray.shutdown()
    shutil.rmtree(out / "staging", ignore_errors=True)
    every = _done_shards(out)
    _write_json(out / MANIFEST, {**header, "shards": [every[n] for n in sorted(every)]})
    refused = [reason for marker in built.values() for reason in marker["refused"]]
    for reason in refused:
        problems.add(f"{reason}; skipped")
    return ShardBuildReport(
        built=tuple(sorted(built)),
        already_done=tuple(sorted(done)),
        articles=sum(marker["articles"] for marker in built.values()),
        sentences=sum(marker["sentences"] for marker in built.values()),
        passages=sum(marker["passages"] for marker in built.values()),
        refused=len(refused),
        problems=problems.named(),
        problem_count=problems.count,
    )


def input_shards(
    inputs: Sequence[Path], shard_articles: int, problems: Problems
) -> Iterator[tuple[int, Iterator[Article]]]:
    """The input's shards in order, each its number and its articles, streamed.

    Several archive files: one shard each. One archive file or folder: cut
    into shards of ``shard_articles``. A shard's articles left unread when the
    next shard is asked for are read past, so skipping a shard is simply not
    reading it. Problems met reading go into ``problems``.

    Raises:
        CorpusError: an input is missing, or is neither a folder nor an archive
            file (several inputs must all be archive files).
    """
    for path in inputs:
        if not path.exists():
            raise CorpusError(f"input {path} does not exist")
    if len(inputs) == 1 and inputs[0].is_dir():
        return _cut(iter(FolderArticles(inputs[0], problems)), shard_articles)
    not_archives = [str(path) for path in inputs if path.is_dir() or archive_suffix(path) is None]
    if not_archives:
        raise CorpusError(
            f"not an archive file: {', '.join(not_archives)}. Give one folder of .txt files, or "
            "archive files (.jsonl, .csv, optionally .gz): one shard each, or one file cut into shards"
        )
    if len(inputs) == 1:
        return _cut(iter_archive(inputs[0], problems), shard_articles)
    if len(inputs) > MAX_SHARDS:
        raise CorpusError(f"{len(inputs):,} archive files is over the {MAX_SHARDS:,} shards one build holds")
    return ((number, iter_archive(path, problems)) for number, path in enumerate(inputs))


def _cut(articles: Iterator[Article], size: int) -> Iterator[tuple[int, Iterator[Article]]]:
    for number in itertools.count():
        first = next(articles, None)
        if first is None:
            return
        if number >= MAX_SHARDS:
            raise CorpusError(f"the input is over the {MAX_SHARDS:,} shards a build holds; use larger shards")
        shard = itertools.chain([first], itertools.islice(articles, size - 1))
        yield number, shard
        collections.deque(shard, maxlen=0)  # read past what the consumer left, to the next shard's start


def read_shard_rows(out: Path, shard: int) -> list[dict[str, Any]]:
    """The rows of one written shard, in article order (for checks and small tools, not a whole build)."""
    import pyarrow.parquet as pq

    from qa.index.shard_stages import shard_folder

    files = sorted(shard_folder(out, shard).glob("part-*.parquet"))
    rows = [row for path in files for row in pq.read_table(path).to_pylist()]
    return sorted(rows, key=lambda row: row["article"])


def _header(inputs: Sequence[Path], options: ShardBuildOptions) -> dict[str, Any]:
    """What the output depends on: a rerun must match it to resume."""
    if options.stand_in_dimension:
        model, dimension = stand_in_id(options.stand_in_dimension), options.stand_in_dimension
    else:
        from qa.embedding.embedder import Embedder

        # Loaded here (once) so a bad --model is one clear error before any worker starts.
        embedder = Embedder(options.model, options.batch_size)
        model, dimension = embedder_id(options.model), embedder.dimension
    entity_model = None
    if options.tag_entities:
        from qa.index.entities import EntityTagger

        entity_model = EntityTagger().version
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model,
        "dimension": dimension,
        "sentences_per_passage": options.settings.sentences_per_passage,
        "passage_stride": options.settings.passage_stride,
        "entity_model": entity_model,
        "inputs": [str(Path(p).resolve()) for p in inputs],
        "shard_articles": options.shard_articles,
    }


def _prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise IndexWriteError(f"cannot write the output folder {out}: {exc.strerror or exc}") from exc
    if any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise IndexWriteError(
            f"{out} holds files but no {MANIFEST}: not a shard build; give an empty or new folder"
        )


def _check_manifest(out: Path, header: dict[str, Any]) -> None:
    path = out / MANIFEST
    if not path.is_file():
        return
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexWriteError(f"cannot read {path}: {exc}; delete the folder to start afresh") from exc
    changed = [key for key, value in header.items() if stored.get(key) != value]
    if changed:
        raise InputError(
            f"{out} holds a build with other {', '.join(changed)}; resume with the same inputs and "
            "options, or give another --out"
        )


def _done_shards(out: Path) -> dict[int, dict[str, Any]]:
    """The markers of the shards already done, by shard number."""
    found = {}
    for path in sorted((out / "done").glob("*.json")):
        marker = json.loads(path.read_text(encoding="utf-8"))
        found[int(marker["shard"])] = marker
    return found


def _stage_pending(
    shards: Iterator[tuple[int, Iterator[Article]]], out: Path, done: set[int], tell: Note
) -> list[_Staged]:
    """Stage every shard not done (its partial output deleted first); an empty one is marked done at once."""
    from qa.index.shard_stages import shard_folder

    staged = []
    (out / "staging").mkdir(exist_ok=True)
    for number, articles in shards:
        if number in done:
            continue
        shutil.rmtree(shard_folder(out, number), ignore_errors=True)
        path = out / "staging" / f"{number:06d}.jsonl"
        count = _write_staged(path, number, articles)
        if count:
            staged.append(_Staged(number, path, count))
        else:
            _mark_done(out, {"shard": number, "articles": 0, "sentences": 0, "passages": 0, "refused": []})
    tell(f"{len(staged)} shard(s) to build, {len(done)} already done")
    return staged


def _write_staged(path: Path, number: int, articles: Iterator[Article]) -> int:
    temporary = path.with_name(f".{path.name}.tmp")
    count = 0
    with temporary.open("w", encoding="utf-8") as staged:
        # Ids have room for MAX_SHARD_ROWS articles a shard; one more from an archive file is an error below.
        for row, article in zip(range(MAX_SHARD_ROWS), articles, strict=False):
            record = {"article": article_id(number, row), **asdict(article)}
            staged.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    if count == MAX_SHARD_ROWS and next(articles, None) is not None:
        raise CorpusError(
            f"input shard {number} holds over {MAX_SHARD_ROWS:,} articles, more than ids have room for; "
            "split the archive file"
        )
    os.replace(temporary, path)
    return count


def _run(
    staged: Sequence[_Staged], out: Path, options: ShardBuildOptions, header: dict[str, Any], tell: Note
) -> dict[int, dict[str, Any]]:
    """Run the Ray job over the staged shards; mark each done as its last article is written."""
    if not staged:
        return {}
    expected = {shard.number: shard.articles for shard in staged}
    totals: dict[int, dict[str, Any]] = {}
    built: dict[int, dict[str, Any]] = {}
    try:
        for summary in _pipeline(staged, out, options, header["model"]).iter_batches(
            batch_size=None, batch_format="pyarrow"
        ):
            for row in summary.to_pylist():
                number = row["shard"]
                total = totals.setdefault(number, {"shard": number, "articles": 0, "sentences": 0,
                                                   "passages": 0, "refused": []})  # fmt: skip
                for key in ("articles", "sentences", "passages"):
                    total[key] += row[key]
                total["refused"] += row["refused"]
                if total["articles"] + len(total["refused"]) == expected[number]:
                    _mark_done(out, total)
                    (out / "staging" / f"{number:06d}.jsonl").unlink(missing_ok=True)
                    built[number] = total
                    tell(
                        f"shard {number}: {total['articles']:,} articles, {total['sentences']:,} sentences, "
                        f"{total['passages']:,} passages ({len(built)}/{len(staged)})"
                    )
    except QAError:
        raise
    except Exception as exc:  # a job failure surfaces as many Ray exception types
        raise job_error(exc) from exc
    return built


def _pipeline(staged: Sequence[_Staged], out: Path, options: ShardBuildOptions, model: str) -> Any:
    """The Ray Data pipeline: read, split, tag, embed, write; its output is the write stage's counts."""
    import ray

    from qa.index import shard_stages as stages

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    gpus = int(ray.cluster_resources().get("GPU", 0))
    embed_workers = options.embed_workers or (
        max(1, int(gpus // options.ray_gpus)) if options.ray_gpus else max(1, cpus // 2)
    )
    batches: dict[str, Any] = {"batch_size": ARTICLES_PER_BATCH, "batch_format": "pyarrow"}
    items = [{"shard": shard.number, "path": str(shard.path)} for shard in staged]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    dataset = dataset.flat_map(stages.read_staged, num_cpus=_TASK_CPUS)
    dataset = dataset.map_batches(
        stages.split_batch,
        fn_kwargs={
            "sentences_per_passage": options.settings.sentences_per_passage,
            "passage_stride": options.settings.passage_stride,
        },
        num_cpus=_TASK_CPUS,
        **batches,
    )
    if options.tag_entities:
        dataset = dataset.map_batches(
            stages.TagBatch,
            compute=ray.data.ActorPoolStrategy(size=options.tag_workers or max(1, cpus // 4)),
            num_cpus=_TAG_CPUS,
            **batches,
        )
    device = "cuda" if options.ray_gpus else "cpu"
    placement = {"num_gpus": options.ray_gpus} if options.ray_gpus else {}
    dataset = dataset.map_batches(
        stages.EmbedBatch,
        fn_constructor_args=(model, options.batch_size, options.stand_in_dimension, device),
        compute=ray.data.ActorPoolStrategy(size=embed_workers),
        num_cpus=1,
        runtime_env={"env_vars": WORKER_ENV},
        **placement,
        **batches,
    )
    return dataset.map_batches(
        stages.write_batch, fn_kwargs={"out": str(out.resolve())}, num_cpus=_TASK_CPUS, **batches
    )


def _mark_done(out: Path, marker: dict[str, Any]) -> None:
    (out / "done").mkdir(exist_ok=True)
    _write_json(out / "done" / f"{marker['shard']:06d}.json", marker)


def _write_json(path: Path, value: Any) -> None:
    """Write ``value`` whole or not at all: a temporary file, then a rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise IndexWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _silent(message: str) -> None:
    """The default ``note``: a part never prints; the CLI passes one that does."""
