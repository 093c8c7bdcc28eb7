"""Hard-negative mining with the base model: exact search, a false-negative margin, and an on-disk cache."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rag_factory.errors import InvalidArgumentError
from rag_factory.models.training.examples import TrainingData
from rag_factory.retrieval.exact_search import Encoder

logger = logging.getLogger(__name__)


# A candidate scoring above 0.95 x the positive's score is probably relevant but unjudged (a false
# negative); this is the 5 % relative margin sentence-transformers suggests for mine_hard_negatives.
DEFAULT_MARGIN = 0.95


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def encode_corpus(
    encode: Encoder,
    data: TrainingData,
    *,
    model_key: str,
    cache_dir: Path | None = None,
) -> npt.NDArray[np.float32]:
    """Vectors of every document in ``data.corpus`` order, cached by (model, corpus content).

    Args:
        encode: Texts to L2-normalised vectors.
        data: Supplies the corpus.
        model_key: Identifies the model (path and modification time, or a registry id).
        cache_dir: Where ``.npy`` files are kept; None disables the cache.
    """
    corpus_key = hashlib.sha256()
    for doc_id, text in data.corpus.items():
        corpus_key.update(doc_id.encode() + b"\0" + text.encode() + b"\0")
    file = None if cache_dir is None else cache_dir / f"corpus-{_key(model_key, corpus_key.hexdigest())}.npy"
    if file is not None and file.is_file():
        return np.load(file)  # type: ignore[no-any-return]
    vectors = np.asarray(encode(list(data.corpus.values())), dtype=np.float32)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        np.save(file.with_suffix(".partial.npy"), vectors)
        file.with_suffix(".partial.npy").replace(file)
    return vectors


def mine_hard_negatives(
    data: TrainingData,
    encode: Encoder,
    *,
    model_key: str,
    num_negatives: int = 4,
    top_k: int = 30,
    margin: float = DEFAULT_MARGIN,
    cache_dir: Path | None = None,
    doc_vectors: npt.NDArray[np.float32] | None = None,
    progress: bool = True,
) -> dict[str, list[str]]:
    """Per query, the base model's highest-ranked documents that are not its positives.

    A candidate is skipped as a likely false negative when its score exceeds ``margin`` times the
    query's lowest positive score (scores are cosine similarities). Explicit negatives in
    ``data.negatives`` (e.g. skipped results) come first.

    Args:
        data: Queries, corpus and positives.
        encode: Texts to L2-normalised vectors (the base model).
        model_key: Identifies the model in cache keys.
        num_negatives: Negatives kept per query.
        top_k: Candidates examined per query.
        margin: Relative false-negative margin in ``(0, 1]``; lower skips more candidates.
        cache_dir: Where mined sets (and corpus vectors) are cached; None disables the cache.
        doc_vectors: Precomputed corpus vectors in ``data.corpus`` order.
        progress: Show a tqdm bar over the queries.

    Returns:
        Query id -> up to ``num_negatives`` document ids, best first.

    Raises:
        InvalidArgumentError: A parameter is out of range.
    """
    if num_negatives < 1 or top_k < num_negatives:
        raise InvalidArgumentError(f"need 1 <= num_negatives <= top_k, got {num_negatives} and {top_k}")
    if not 0.0 < margin <= 1.0:
        raise InvalidArgumentError(f"margin must be in (0, 1], got {margin}")
    params = {"num_negatives": num_negatives, "top_k": top_k, "margin": margin}
    file = None if cache_dir is None else cache_dir / f"negatives-{_key(model_key, data.content_hash(), params)}.json"
    if file is not None and file.is_file():
        logger.info("hard negatives from cache %s", file)
        cached: dict[str, list[str]] = json.loads(file.read_text(encoding="utf-8"))
        return cached
    from tqdm.auto import tqdm

    if doc_vectors is None:
        doc_vectors = encode_corpus(encode, data, model_key=model_key, cache_dir=cache_dir)
    doc_ids = list(data.corpus)
    index = {d: i for i, d in enumerate(doc_ids)}
    positives = data.positives()
    query_ids = list(positives)
    query_vectors = np.asarray(encode([data.queries[q] for q in query_ids]), dtype=np.float32)
    k = min(top_k + max((len(p) for p in positives.values()), default=0), len(doc_ids))
    mined: dict[str, list[str]] = {}
    for row, qid in enumerate(tqdm(query_ids, desc="mining hard negatives", unit="query", disable=not progress)):
        scores = doc_vectors @ query_vectors[row]  # (docs,)
        positive_ids = set(positives[qid])
        threshold = margin * min(float(scores[index[d]]) for d in positive_ids)
        chosen = [d for d in data.negatives.get(qid, []) if d not in positive_ids][:num_negatives]
        top = np.argpartition(-scores, k - 1)[:k]
        for j in top[np.argsort(-scores[top])][: top_k + len(positive_ids)]:
            if len(chosen) >= num_negatives:
                break
            doc_id = doc_ids[j]
            if doc_id in positive_ids or doc_id in chosen or scores[j] > threshold:
                continue
            chosen.append(doc_id)
        mined[qid] = chosen
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(mined), encoding="utf-8")
    return mined
