"""How newsqa reaches and lays out a Milvus deployment beyond its URI: credentials, TLS, shards, replicas.

A token comes from ``--token`` or ``$NEWSQA_MILVUS_TOKEN`` (the environment keeps
it out of ``ps`` and shell history: prefer it); ``--ca-file`` is the PEM of the
authority that signed an ``https://`` server's certificate, for a private CA.
Shards are fixed when a collection is made; replicas are how many copies the
query nodes load, set by the sync that publishes a collection. A serving
process loads a collection only when it is not loaded, so it never asks a
cluster to change the replica count an operator chose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.errors import InputError

if TYPE_CHECKING:
    from pymilvus import MilvusClient

# Milvus' own limit on shards a collection may have (proxy.maxShardNum, default 16).
MAX_SHARDS = 16
MAX_REPLICAS = 100
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ClusterOptions:
    """What a Milvus server or cluster needs besides its URI; all None on milvus-lite."""

    token: str | None = None
    ca_file: str | None = None
    db_name: str | None = None
    shards: int | None = None
    replicas: int | None = None

    def check(self, uri: str) -> None:
        """Raise InputError for an option this ``uri`` cannot take or a value Milvus refuses."""
        server_only = {"--token": self.token, "--ca-file": self.ca_file, "--db-name": self.db_name}
        given = [flag for flag, value in server_only.items() if value]
        if uri.endswith(".db") and given:
            raise InputError(f"{', '.join(given)}: for a Milvus server URL, not a milvus-lite file ({uri})")
        if self.ca_file and not uri.startswith("https://"):
            raise InputError(f"--ca-file is for TLS: give an https:// URI, not {uri!r}")
        if self.ca_file and not Path(self.ca_file).is_file():
            raise InputError(f"--ca-file {self.ca_file!r} is not a readable file")
        if self.db_name and not _DB_NAME.match(self.db_name):
            raise InputError(f"--db-name must be letters, digits and underscores, got {self.db_name!r}")
        limits = (("--shards", self.shards, MAX_SHARDS), ("--replicas", self.replicas, MAX_REPLICAS))
        for flag, value, most in limits:
            if value is not None and not 1 <= value <= most:
                raise InputError(f"{flag} must be between 1 and {most}, got {value}")

    def client_options(self, token_from_env: str) -> dict[str, Any]:
        """Keyword arguments of ``MilvusClient`` for a server."""
        options: dict[str, Any] = {"token": self.token or token_from_env}
        if self.db_name:
            options["db_name"] = self.db_name
        if self.ca_file:
            options |= {"secure": True, "server_pem_path": self.ca_file}
        return options

    def creation(self) -> dict[str, Any]:
        """Keyword arguments of ``create_collection``: the shard count, when chosen."""
        return {"num_shards": self.shards} if self.shards else {}


NO_OPTIONS = ClusterOptions()


def ensure_loaded(
    client: MilvusClient, collection: str, options: ClusterOptions, publish: bool = False
) -> None:
    """Load ``collection`` unless it is loaded; a sync (``publish``) loads with the chosen replica count."""
    from pymilvus.client.types import LoadState

    loaded = client.get_load_state(collection, timeout=TIMEOUT_S)["state"] == LoadState.Loaded
    if loaded and not (publish and options.replicas):
        return
    if loaded:
        # A cluster refuses a new replica count for a loaded collection; the side a sync writes is not served.
        client.release_collection(collection, timeout=TIMEOUT_S)
    replicas = {"replica_number": options.replicas} if options.replicas else {}
    client.load_collection(collection, timeout=TIMEOUT_S, **replicas)
