"""Which retriever serves passages: the index folder's own files, or a Milvus collection.

The choice is checked before any index work starts, so a bad ``--uri`` costs
nothing; the retriever is opened once the index is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from qa.errors import InputError
from qa.index.store import IndexData
from qa.retrieval.milvus import check_target
from qa.retrieval.milvus import open_retriever as open_milvus
from qa.retrieval.milvus_cluster import NO_OPTIONS, ClusterOptions
from qa.retrieval.retriever import Retriever
from qa.settings import DEFAULT_COLLECTION

BackendName = Literal["local", "milvus"]


@dataclass(frozen=True)
class Backend:
    """A checked choice of retrieval backend."""

    name: BackendName = "local"
    uri: str | None = None
    collection: str = DEFAULT_COLLECTION
    options: ClusterOptions = NO_OPTIONS


def choose_backend(
    name: str, uri: str | None, collection: str | None, options: ClusterOptions = NO_OPTIONS
) -> Backend:
    """Check a backend, URI, collection and cluster options against each other (and Milvus' rules).

    Raises:
        InputError: an unknown backend, Milvus without a URI, a URI or cluster
            options without Milvus, or a URI, collection name or option Milvus cannot take.
    """
    if name not in ("local", "milvus"):
        raise InputError(f"backend must be 'local' or 'milvus', got {name!r}")
    if name == "milvus" and uri is None:
        raise InputError(
            "backend 'milvus' needs a URI (--uri): a milvus-lite file ending in .db "
            "or a server URL http(s)://host:port"
        )
    if name == "local":
        if uri is not None:
            raise InputError(f"a URI ({uri!r}) is only used with backend 'milvus' (--backend milvus)")
        if options != NO_OPTIONS:
            raise InputError("--token, --ca-file, --db-name, --shards and --replicas need --backend milvus")
        return Backend()
    collection = collection or DEFAULT_COLLECTION
    check_target(uri, collection, options)
    return Backend("milvus", uri, collection, options)


def open_retriever(
    backend: Backend,
    data: IndexData,
    sync: bool = False,
    progress: bool = True,
    note: Callable[[str], None] | None = None,
) -> Retriever | None:
    """The retriever of ``backend`` over ``data``; Milvus is synced from ``data`` first when ``sync``.

    None for the local backend: the engine builds a LocalRetriever over the
    passage filter it already holds (one pass over every passage, not two).

    Raises:
        IndexStoreError: the Milvus collection is missing, out of step with the
            index (without ``sync``), or cannot be reached.
    """
    if backend.name == "local" or backend.uri is None:
        return None
    return open_milvus(backend.uri, data, backend.collection, sync, progress, note, backend.options)
