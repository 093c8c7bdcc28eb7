"""Everything checked and built before training starts: data, split, base model and validation evaluator."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rag_factory.data.beir import BeirDataset, load_beir
from rag_factory.errors import DatasetError, InvalidConfigError, quoted
from rag_factory.models.embedding.hub import resolve_model_path
from rag_factory.models.embedding.records import ModelRecord
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.embedding.static_int8 import CALIBRATION_TEXTS
from rag_factory.models.training.config import FineTuneConfig
from rag_factory.models.training.examples import (
    TrainingData,
    deduplicate,
    from_beir,
    load_llamaindex_json,
    load_query_logs,
    normalise_query,
)
from rag_factory.models.training.precision import ResolvedPrecision, autocast
from rag_factory.models.training.splits import check_disjoint, split_by_query
from rag_factory.models.training.strategies import Strategy, get_strategy

logger = logging.getLogger(__name__)


@dataclass
class PreparedRun:
    """Validated inputs of one run; building it fails fast on every bad input."""

    config: FineTuneConfig
    strategy: Strategy
    data: TrainingData  # all training-split pairs, after de-duplication
    train: TrainingData
    validation: TrainingData
    test: BeirDataset | None
    base_path: Path
    base_record: ModelRecord | None
    registry: ModelRegistry | None
    beir: BeirDataset | None = None  # the BEIR source (titles for pseudo-queries), whatever the splits
    held_out_docs: frozenset[str] = frozenset()  # documents judged by any split other than the training one


def load_training_data(config: FineTuneConfig) -> tuple[TrainingData, BeirDataset | None]:
    """Load ``config.data`` in its format; BEIR also returns the dataset, for its test split.

    Raises:
        DatasetError: Missing files, bad lines or qrels naming unknown ids.
    """
    path, fmt = Path(config.data), config.data_format
    try:
        exists = path.exists()
    except OSError as exc:  # a name too long for the file system
        raise DatasetError(f"training data {quoted(str(path))} cannot be read: {exc.strerror}") from exc
    if not exists:
        raise DatasetError(f"training data {quoted(str(path))} does not exist")
    if fmt == "auto":
        fmt = "beir" if path.is_dir() else "llamaindex" if path.suffix == ".json" else "query_log"
    if fmt == "beir":
        beir = load_beir(path)
        return from_beir(beir, config.train_split), beir
    if fmt == "llamaindex":
        return load_llamaindex_json(path), None
    if config.corpus is None:
        raise DatasetError("query logs need a corpus file (config.corpus)")
    return load_query_logs(path, config.corpus), None


def resolve_base(config: FineTuneConfig, registry: ModelRegistry | None) -> tuple[Path, ModelRecord | None]:
    """The base model's directory, and its registry record when a registry is used.

    Raises:
        ModelNotFoundError: A registry is given and the base is not registered in it.
        HubModelNotAvailableError, ModelPathNotFoundError: Without a registry, the base does not resolve.
        InvalidConfigError: The registered base has no transformer artifact to train from.
    """
    if registry is None:
        return resolve_model_path(config.base_model), None
    record = registry.resolve(config.base_model)
    if record.metadata.format.value not in ("sentence_transformers", "huggingface"):
        raise InvalidConfigError(
            f"base {record.ref} is stored as {record.metadata.format.value}; fine-tuning needs a "
            "sentence_transformers or huggingface artifact"
        )
    artifact = registry.artifact_path(record.model_id)
    if artifact is None:
        raise InvalidConfigError(f"base {record.ref} has no stored artifact to fine-tune")
    return artifact, record


def prepare(
    config: FineTuneConfig, registry: ModelRegistry | None, exclude_ids: list[str] | None = None
) -> PreparedRun:
    """Check every input and split the data; nothing is trained or loaded yet.

    Raises:
        UnknownFormatError: Unknown strategy.
        DatasetError: Bad files, test queries in the training data, or nothing left to train on.
        ModelNotFoundError: The base is not registered (with a registry).
    """
    strategy = get_strategy(config.strategy)
    data, beir = load_training_data(config)
    data = deduplicate(data)
    test: BeirDataset | None = None
    if beir is not None and config.test_split is not None and config.test_split in beir.qrels:
        test = beir
    excluded = set(exclude_ids or ())
    kept = data.subset(q for q in data.query_ids() if q not in excluded)
    if test is not None:
        test_ids = list(test.split(config.test_split or "test"))
        check_disjoint(kept, test_ids)
        # The same question under another id would leak the test too; drop it from training quietly.
        test_texts = {normalise_query(test.queries[q]) for q in test_ids}
        same_text = [q for q in kept.query_ids() if normalise_query(kept.queries[q]) in test_texts]
        if same_text:
            logger.warning("leaving out %d training queries whose text is also a test query", len(same_text))
            kept = kept.subset(q for q in kept.query_ids() if q not in set(same_text))
    if not kept.pairs:
        raise DatasetError(f"dataset {data.name!r} has no training pairs after filtering", dataset=data.name)
    train, validation = split_by_query(kept, config.validation_fraction, seed=config.seed)
    if config.early_stopping_patience and not validation.pairs:
        raise DatasetError("early stopping needs a validation split; set validation_fraction > 0")
    base_path, base_record = resolve_base(config, registry)
    held_out = frozenset(
        d for name, qrels in (beir.qrels.items() if beir else ()) if name != config.train_split
        for judged in qrels.values() for d in judged
    )  # fmt: skip
    return PreparedRun(
        config, strategy, kept, train, validation, test, base_path, base_record, registry, beir, held_out
    )


TITLE_QUERY_PREFIX = "title:"
TITLE_BODY_PREFIX = "title-body:"


def title_pairs(run: PreparedRun, count: int) -> TrainingData:
    """``run.train`` plus up to ``count`` (title -> body) pseudo-queries from corpus documents.

    A scientific title reads like a claim about its abstract, so these pairs teach the domain's
    vocabulary from the corpus alone. Documents that are positives of validation queries, or judged
    by any other split of the dataset (such as test), are never used, so no held-out split leaks.
    Only BEIR data has titles; other formats return ``run.train`` unchanged.
    """
    if count <= 0 or run.beir is None:
        return run.train
    banned = {d for _, d in run.validation.pairs} | run.held_out_docs
    corpus_docs = run.beir.corpus
    candidates = [d for d, doc in corpus_docs.items() if doc.title and doc.text and d not in banned]
    random.Random(run.config.seed).shuffle(candidates)
    queries, corpus, pairs = dict(run.train.queries), dict(run.train.corpus), list(run.train.pairs)
    for doc_id in candidates[:count]:
        qid, pseudo_doc = TITLE_QUERY_PREFIX + doc_id, TITLE_BODY_PREFIX + doc_id
        queries[qid] = corpus_docs[doc_id].title
        corpus[pseudo_doc] = corpus_docs[doc_id].text
        pairs.append((qid, pseudo_doc))
    return TrainingData(run.train.name, queries, corpus, pairs, dict(run.train.negatives), run.train.source_hash)


def mining_view(data: TrainingData, corpus: dict[str, str]) -> TrainingData:
    """``data`` with each title pseudo-query's positive mapped back to its source document in ``corpus``.

    The miner searches the real corpus, where a title's body lives inside its source document; the
    source must count as the positive there, or it would be mined as the title's hardest "negative".
    """
    pairs = [(q, d.removeprefix(TITLE_BODY_PREFIX)) for q, d in data.pairs]
    return TrainingData(data.name, data.queries, corpus, pairs, data.negatives, data.source_hash)


def validation_corpus(
    run: PreparedRun, query_vectors: npt.NDArray[np.float32], doc_vectors: npt.NDArray[np.float32]
) -> dict[str, str]:
    """Documents the validation evaluator searches: positives, the base's top hits, then random fill.

    Searching the whole corpus every epoch costs minutes on a CPU; the base's top hits keep the
    validation task hard, and the random fill keeps it honest about drift.
    """
    size = run.config.validation_corpus_size
    doc_ids = list(run.data.corpus)
    chosen = dict.fromkeys(d for _, d in run.validation.pairs)
    scores = query_vectors @ doc_vectors.T  # (validation queries, docs)
    order = np.argsort(-scores, axis=1)
    for rank in range(min(20, len(doc_ids))):
        if len(chosen) >= size * 2 // 3:
            break
        chosen.update(dict.fromkeys(doc_ids[j] for j in order[:, rank]))
    rest = [d for d in doc_ids if d not in chosen]
    random.Random(run.config.seed).shuffle(rest)
    chosen.update(dict.fromkeys(rest[: max(0, size - len(chosen))]))
    return {d: run.data.corpus[d] for d in doc_ids if d in chosen}


def make_validation_evaluator(
    run: PreparedRun,
    corpus: dict[str, str],
    max_seq_length: int,
    batch_size: int = 32,
    precision: ResolvedPrecision = "fp32",
) -> Any:
    """An ``InformationRetrievalEvaluator`` over the validation split that embeds at inference length.

    It encodes in the run's ``precision``, inside training and after it (checkpoint averaging).
    """
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    class _InferenceLengthEvaluator(InformationRetrievalEvaluator):  # type: ignore[misc]
        # Training may truncate documents harder than serving does; validate the way the model serves.
        def __call__(self, model: Any, *args: Any, **kwargs: Any) -> Any:
            previous = model.max_seq_length
            model.max_seq_length = max_seq_length
            try:
                with autocast(precision, model.device.type):
                    return super().__call__(model, *args, **kwargs)
            finally:
                model.max_seq_length = previous

    positives = run.validation.positives()
    documents: dict[str, Any] = dict(corpus)
    return _InferenceLengthEvaluator(
        queries={q: run.validation.queries[q] for q in positives},
        corpus=documents,
        relevant_docs={q: set(docs) for q, docs in positives.items()},
        name="validation",
        batch_size=batch_size,
        show_progress_bar=run.config.show_progress,
        write_csv=False,
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[1, 10],
        precision_recall_at_k=[10, 100],
        map_at_k=[100],
    )


def calibration_sample(run: PreparedRun, limit: int = CALIBRATION_TEXTS) -> list[str]:
    """Training queries and their positive documents, alternating: the int8 export's calibration texts.

    Activation ranges calibrated on the model's own domain keep int8 closest to fp32; only training
    texts are used, never validation or test ones.
    """
    texts: list[str] = []
    for qid, doc_id in run.train.pairs:
        if len(texts) >= limit:
            break
        texts += [run.train.queries[qid], run.train.corpus[doc_id]]
    return texts[:limit]
