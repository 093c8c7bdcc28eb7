"""On-disk cache of corpus embeddings, keyed by model identity, dataset content and backend."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from rag_factory.errors import FailedPreconditionError

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDING_CACHE_DIR = Path.home() / ".cache" / "rag_factory" / "embeddings"
CacheStatus = Literal["hit", "miss", "refreshed", "disabled"]
"""Where an evaluation's corpus vectors came from: the cache, a fresh embedding (stored or not)."""
_FORMAT = 1


@dataclass(frozen=True)
class CacheKey:
    """Everything that changes corpus vectors; two equal keys must give the same vectors."""

    model_identity: str  # artifact sha256 or the model path's content hash
    model_id: str
    dataset: str
    dataset_hash: str
    backend: str
    precision: str
    source: str  # file name of the weights actually run (model.onnx vs model_int8.onnx)
    max_seq_length: int
    normalize: bool
    pooling: str

    def digest(self) -> str:
        """A short, stable hex digest of the key."""
        payload = json.dumps(self.__dict__, sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:24]


def _doc_ids_digest(doc_ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(doc_ids).encode()).hexdigest()


class CorpusEmbeddingCache:
    """Corpus vectors as ``<root>/<dataset>/<key digest>/corpus.npy`` next to a ``meta.json``.

    Writes are atomic (temporary file, then rename), so a crash never leaves a half-written cache
    that a later run would trust.

    Args:
        root: Cache directory (created when first written).
    """

    def __init__(self, root: str | Path = DEFAULT_EMBEDDING_CACHE_DIR) -> None:
        self.root = Path(root)

    def folder(self, key: CacheKey) -> Path:
        """Where the vectors of ``key`` live."""
        safe_dataset = "".join(c if c.isalnum() or c in "-_." else "_" for c in key.dataset) or "dataset"
        return self.root / safe_dataset / key.digest()

    def load(self, key: CacheKey, doc_ids: Sequence[str], embedding_dim: int) -> npt.NDArray[np.float32] | None:
        """The cached ``(len(doc_ids), embedding_dim)`` vectors, or None when nothing is cached.

        Raises:
            FailedPreconditionError: Cached vectors exist but do not fit: another dimension than the
                model's, another document count or other document ids. They are never returned.
        """
        folder = self.folder(key)
        vectors_file, meta_file = folder / "corpus.npy", folder / "meta.json"
        if not (vectors_file.is_file() and meta_file.is_file()):
            return None
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            logger.warning("ignoring unreadable embedding cache metadata %s", meta_file)
            return None
        vectors = np.load(vectors_file, allow_pickle=False)
        fix = f"delete {str(folder)!r} (or evaluate with refresh_cache / --refresh-cache) to re-embed"
        if vectors.ndim != 2 or vectors.shape[1] != embedding_dim or meta.get("embedding_dim") != embedding_dim:
            raise FailedPreconditionError(
                f"cached corpus embeddings have dimension {vectors.shape[-1]} but model {key.model_id!r} "
                f"produces {embedding_dim}; {fix}",
                model_id=key.model_id,
                cache=str(folder),
            )
        if vectors.shape[0] != len(doc_ids) or meta.get("doc_ids_sha256") != _doc_ids_digest(doc_ids):
            raise FailedPreconditionError(
                f"cached corpus embeddings hold {vectors.shape[0]} documents that do not match the "
                f"{len(doc_ids)} documents of {key.dataset!r}; {fix}",
                cache=str(folder),
            )
        return np.asarray(vectors, dtype=np.float32)

    def save(self, key: CacheKey, doc_ids: Sequence[str], vectors: npt.NDArray[np.float32]) -> Path:
        """Store ``vectors`` (one row per doc id) for ``key``; returns the folder."""
        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        partial = folder / f"corpus.{pid}.partial.npy"
        np.save(partial, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        meta = {
            "format": _FORMAT,
            "key": key.__dict__,
            "embedding_dim": int(vectors.shape[1]),
            "documents": int(vectors.shape[0]),
            "doc_ids_sha256": _doc_ids_digest(doc_ids),
        }
        meta_partial = folder / f"meta.{pid}.partial.json"
        meta_partial.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        # Vectors first: a reader only trusts the pair once meta.json (written last) exists.
        partial.replace(folder / "corpus.npy")
        meta_partial.replace(folder / "meta.json")
        return folder
