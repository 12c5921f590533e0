"""An index, current: open the index of a corpus, updating or rebuilding it first when it must.

The engine asks for "an index, current" and gets one. Here is the whole
decision: load the index as it is, update it (qa.index.update: only added and
edited articles are embedded) when only the corpus changed, or build it anew
when it is missing, damaged, or was built from another model, schema or
passage setting. Each reason is told to ``note``; a stale index is never
used, but for one case: an update that cannot be written (a full disk, a
read-only place) leaves the old index whole, and questions are answered from
it, with a notice, rather than not at all. Its failure is noted
(qa.index.folder.FailedUpdate) and not tried again on every opening: only by
``qa index`` (``strict``), or once the corpus changed again and
:data:`RETRY_BACKOFF_SECONDS` passed. Loading takes no lock and writes
nothing. The corpus is not read at all while its files' names, sizes and
times match those the index recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from qa.corpus.folder import corpus_signature, load_corpus
from qa.corpus.load import CorpusLoad
from qa.embedding.embedder import Embedder
from qa.embedding.packaged import DEFAULT_MODEL, embedder_id
from qa.embedding.ray_job import build_embedder
from qa.errors import IndexStoreError, IndexWriteError
from qa.index.folder import (
    MANIFEST,
    FailedUpdate,
    failed_update,
    record_failed_update,
    tidy_leftovers,
)
from qa.index.store import (
    CORPUS_CHANGED,
    CorpusRecord,
    IndexData,
    IndexSpec,
    build_index,
    load_index,
    read_manifest,
    stale_reasons,
)
from qa.index.update import update_index
from qa.settings import Settings

Note = Callable[[str], None]
Action = Literal["load", "update", "build"]

# A failed update is tried again by itself only after this long, and only for
# a corpus changed since: the same corpus would fail the same way (a disk
# still full), and a try can cost as long as embedding the change, which no
# question should wait for more than once in ten minutes. `qa index` tries at once.
RETRY_BACKOFF_SECONDS = 600.0
# What either notice of a failed update goes on to say.
_ANSWERING_FROM_OLD = (
    "answering from the old index, which may still cite text since removed or edited; `qa index` tries again"
)


@dataclass(frozen=True)
class CurrentIndex:
    """A loaded index that matches its corpus, the embedder its vectors came from, and the corpus problems."""

    data: IndexData
    embedder: Embedder
    corpus_problems: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """What to do with an index folder, and why (``notice``: None when nothing is worth saying)."""

    action: Action
    notice: str | None = None
    corpus_changed: bool = False


def decide(
    index_dir: Path, manifest: dict[str, Any] | None, spec: IndexSpec, rebuild: bool, corpus_read: bool
) -> Decision:
    """Load, update or build, from the manifest found and the index wanted.

    ``corpus_read`` is True when the corpus files' times or sizes no longer
    match the manifest, so the corpus had to be read: an update then checks
    it article by article even if its fingerprint is unchanged.
    """
    if rebuild:
        return Decision("build", "rebuilding the index as asked")
    if manifest is None and (index_dir / MANIFEST).exists():
        return Decision("build", f"index in {index_dir} is damaged ({MANIFEST} is unreadable); rebuilding")
    if manifest is None:
        return Decision("build", f"no index in {index_dir}; building it")
    reasons = stale_reasons(manifest, spec)
    if reasons and reasons != [CORPUS_CHANGED]:
        return Decision("build", f"index in {index_dir} is stale ({', '.join(reasons)}); rebuilding")
    if reasons or corpus_read:
        return Decision("update", corpus_changed=bool(reasons))
    return Decision("load")


def retry_due(failed: FailedUpdate | None, signature: str, now: float) -> bool:
    """Whether to update for a corpus with ``signature`` at ``now``, given the last update that ``failed``."""
    if failed is None:
        return True
    return signature != failed.signature and now - failed.time >= RETRY_BACKOFF_SECONDS


def open_current(
    corpus_dir: Path,
    index_dir: Path,
    model: str | None,
    settings: Settings,
    note: Note,
    rebuild: bool = False,
    progress: bool = True,
    ray_address: str | None = None,
    reader: dict[str, str] | None = None,
    strict: bool = False,
    follow_symlinks: bool = False,
) -> CurrentIndex:
    """The index of ``corpus_dir`` in ``index_dir``, loaded, updated or built as :func:`decide` says.

    Args:
        corpus_dir: folder of article files, or a ``.jsonl``/``.csv`` archive.
        index_dir: where the index lives (created if missing).
        model: embedding model and backend; ``None`` keeps the index's own
            (DEFAULT_MODEL for a new index).
        settings: passage size, stride and batch size.
        note: told each notice as it happens.
        rebuild: build even if the index is current.
        progress: progress bars while building.
        ray_address: embed a build or an update on Ray instead of in this process.
        reader: the reader's id and sha256, recorded in a new manifest.
        strict: the index must end up current (``qa index``): an update that
            failed before is tried at once, and one that fails raises instead
            of leaving the old index in use.
        follow_symlinks: read a corpus folder's symlinks that lead outside it
            too (by default each is skipped and named; qa.corpus.folder).

    Raises:
        IndexStoreError: there is no usable index and none can be built.
        IndexWriteError: with ``strict``, the update cannot be written.
        CorpusError: the corpus cannot be read where it was given.
        ModelError: the model cannot load.
    """
    tidy_leftovers(index_dir)
    corpus = _Corpus(corpus_dir, note, progress, follow_symlinks)
    manifest = read_manifest(index_dir)
    spec = _wanted_spec(manifest, model, settings, corpus, rebuild)
    embedder = Embedder(spec.model, batch_size=settings.batch_size, note=note)
    decision = decide(index_dir, manifest, spec, rebuild, corpus.loaded)
    data = None
    if decision.action != "build":
        data = _load_or_update(
            index_dir, decision, spec, embedder, corpus, note, progress, ray_address, strict
        )
    elif decision.notice:
        note(decision.notice)
    if data is None:
        data = _build(index_dir, spec, embedder, corpus, note, progress, ray_address, rebuild, reader)
    return CurrentIndex(data, embedder, corpus.record().problems)


def _wanted_spec(
    manifest: dict[str, Any] | None, model: str | None, settings: Settings, corpus: _Corpus, rebuild: bool
) -> IndexSpec:
    """The spec the index must have, reading the corpus only when the manifest cannot vouch for it."""
    if model is None:
        model = manifest.get("spec", {}).get("model", DEFAULT_MODEL) if manifest else DEFAULT_MODEL
    stored = CorpusRecord.from_manifest((manifest or {}).get("corpus"))
    if not rebuild and manifest and stored is not None and stored.signature == corpus.signature:
        # The corpus files are as they were when indexed: trust the recorded reading.
        corpus.reuse(stored)
        fingerprint = manifest["spec"].get("corpus_fingerprint", "")
    else:
        fingerprint = corpus.articles().fingerprint
    return IndexSpec(embedder_id(model), fingerprint, settings.sentences_per_passage, settings.passage_stride)


def _load_or_update(
    index_dir: Path,
    decision: Decision,
    spec: IndexSpec,
    embedder: Embedder,
    corpus: _Corpus,
    note: Note,
    progress: bool,
    ray_address: str | None,
    strict: bool,
) -> IndexData | None:
    """The index loaded, after an update if the decision says so; None when it turns out damaged.

    An update that cannot be written is noted and leaves the old index in
    use (unless ``strict``); one that failed before is not tried again until
    :func:`retry_due`.
    """
    try:
        if decision.action == "load":
            return load_index(index_dir)
        failed = None if strict else failed_update(index_dir)
        if failed is not None and not retry_due(failed, corpus.signature, time.time()):
            data = load_index(index_dir)
            note(_out_of_date(index_dir, failed))
            return data
        try:
            with build_embedder(embedder, ray_address) as encoder:
                articles, record = corpus.articles().articles, corpus.record()
                report = update_index(index_dir, articles, spec, encoder, progress, note=note, corpus=record)
        except IndexWriteError as exc:
            record_failed_update(index_dir, FailedUpdate(corpus.signature, str(exc), time.time()))
            if strict:
                raise
            data = load_index(index_dir)
            note(f"could not update the index in {index_dir} ({exc}); {_ANSWERING_FROM_OLD}")
            return data
        data = load_index(index_dir)
        if decision.corpus_changed:
            note(report.summary())
        return data
    except IndexWriteError:
        raise
    except IndexStoreError as exc:
        note(f"index in {index_dir} is damaged ({exc}); rebuilding")
        return None


def _out_of_date(index_dir: Path, failed: FailedUpdate) -> str:
    """The notice for an index used as it is because its update failed before."""
    minutes = max(0, round((time.time() - failed.time) / 60))
    return (
        f"the index in {index_dir} is out of date: updating it failed {minutes} min ago ({failed.error}); "
        f"{_ANSWERING_FROM_OLD}"
    )


def _build(
    index_dir: Path,
    spec: IndexSpec,
    embedder: Embedder,
    corpus: _Corpus,
    note: Note,
    progress: bool,
    ray_address: str | None,
    rebuild: bool,
    reader: dict[str, str] | None,
) -> IndexData:
    loaded = corpus.articles()
    with build_embedder(embedder, ray_address) as encoder:
        build_index(
            index_dir,
            loaded.articles,
            spec,
            encoder,
            progress,
            force=rebuild,
            note=note,
            reader=reader,
            corpus=corpus.record(),
        )
    data = load_index(index_dir)
    note(
        f"indexed {len(loaded.articles)} article(s), skipped {loaded.skipped}; "
        f"{data.manifest['counts']['passages']} passages"
    )
    return data


class _Corpus:
    """The corpus as an opening needs it: read at most once, and only if the index cannot vouch for it."""

    def __init__(self, corpus_dir: Path, note: Note, progress: bool, follow_symlinks: bool) -> None:
        self._dir = corpus_dir
        self._note = note
        self._progress = progress
        self._follow_symlinks = follow_symlinks
        # Whether links out are followed goes in: the same files are another corpus with it.
        self.signature = corpus_signature(corpus_dir, follow_symlinks)
        self._load: CorpusLoad | None = None
        self._stored: CorpusRecord | None = None

    @property
    def loaded(self) -> bool:
        return self._load is not None

    def reuse(self, stored: CorpusRecord) -> None:
        """Take the problems recorded when the index last read these same files, and report them."""
        self._stored = stored
        for problem in stored.problems:
            self._note(problem)

    def articles(self) -> CorpusLoad:
        """The corpus, read now if it was not read yet (its problems reported once)."""
        if self._load is None:
            self._load = load_corpus(self._dir, self._progress, self._follow_symlinks)
            if self._stored is None:
                for problem in self._load.problems:
                    self._note(problem)
            self._stored = None
        return self._load

    def record(self) -> CorpusRecord:
        """What the manifest records of the corpus."""
        if self._load is not None:
            return CorpusRecord.of(self.signature, self._load)
        assert self._stored is not None
        return self._stored
