"""Training data for fine-tuning: queries, documents and (query, document) pairs from BEIR, LlamaIndex or logs."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rag_factory.data.beir import BeirDataset, load_beir, read_jsonl_objects, row_id
from rag_factory.errors import DatasetError, describe_choices, quoted

_SPACES = re.compile(r"\s+")


def normalise_query(text: str) -> str:
    """The form under which two queries count as the same: case-folded, whitespace collapsed."""
    return _SPACES.sub(" ", text).strip().casefold()


@dataclass
class TrainingData:
    """Queries, documents and positive pairs, plus optional per-query negatives.

    Attributes:
        name: Dataset name recorded as ``fine_tuned_on``.
        queries: Query id -> text.
        corpus: Document id -> text (title and body joined, as it is embedded).
        pairs: ``(query_id, doc_id)`` positive pairs, in a stable order.
        negatives: Query id -> document ids known not to answer it (e.g. skipped results).
        source_hash: sha256 of the source files, to tie results and caches to exact data.
    """

    name: str
    queries: dict[str, str]
    corpus: dict[str, str]
    pairs: list[tuple[str, str]]
    negatives: dict[str, list[str]] = field(default_factory=dict)
    source_hash: str = ""

    def positives(self) -> dict[str, list[str]]:
        """Query id -> its positive document ids, in pair order."""
        found: dict[str, list[str]] = {}
        for qid, doc_id in self.pairs:
            found.setdefault(qid, []).append(doc_id)
        return found

    def query_ids(self) -> list[str]:
        """Ids of the queries that have at least one positive, in first-seen order."""
        return list(dict.fromkeys(qid for qid, _ in self.pairs))

    def subset(self, query_ids: Iterable[str]) -> TrainingData:
        """The same corpus with only the pairs and negatives of ``query_ids``."""
        keep = set(query_ids)
        return TrainingData(
            name=self.name,
            queries={q: t for q, t in self.queries.items() if q in keep},
            corpus=self.corpus,
            pairs=[(q, d) for q, d in self.pairs if q in keep],
            negatives={q: n for q, n in self.negatives.items() if q in keep},
            source_hash=self.source_hash,
        )

    def content_hash(self) -> str:
        """sha256 over the queries, pairs, negatives and corpus actually used (cache keys)."""
        digest = hashlib.sha256()
        for part in (self.queries, self.pairs, self.negatives):
            digest.update(json.dumps(part, sort_keys=True).encode())
        for doc_id in sorted(self.corpus):
            digest.update(doc_id.encode() + b"\0" + self.corpus[doc_id].encode() + b"\0")
        return digest.hexdigest()

    def check(self) -> None:
        """Refuse pairs or negatives that name unknown ids.

        Raises:
            DatasetError: A pair or negative points at a query or document that does not exist.
        """
        unknown_q = {q for q, _ in self.pairs if q not in self.queries}
        unknown_d = {d for _, d in self.pairs if d not in self.corpus}
        unknown_d |= {d for docs in self.negatives.values() for d in docs if d not in self.corpus}
        if unknown_q or unknown_d:
            raise DatasetError(
                f"dataset {self.name!r}: judgements name {len(unknown_q)} unknown query ids and {len(unknown_d)} "
                f"unknown document ids (e.g. {describe_choices([*unknown_q, *unknown_d], 3)})"
            )


def from_beir(dataset: BeirDataset | str | Path, split: str = "train") -> TrainingData:
    """Training data from one split of a BEIR dataset (every judgement with grade > 0 is a positive).

    Raises:
        DatasetError: Missing files, a missing split, or qrels naming unknown ids.
    """
    beir = dataset if isinstance(dataset, BeirDataset) else load_beir(dataset)
    qrels = beir.split(split)
    pairs = [(q, d) for q, judged in qrels.items() for d, grade in judged.items() if grade > 0]
    data = TrainingData(
        name=beir.name,
        queries=dict(beir.queries),
        corpus={d: doc.as_text() for d, doc in beir.corpus.items()},
        pairs=pairs,
        source_hash=beir.content_hash(),
    )
    data.check()
    return data


def _file_hash(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():  # also false for a FIFO or device, which would block the reader
        raise DatasetError(f"{what} {quoted(str(path))} does not exist or is not a regular file")


def _read_json(file: Path) -> object:
    try:
        return json.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{file.name} is not valid UTF-8 (byte {exc.start + 1})") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{file.name} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    except RecursionError as exc:
        raise DatasetError(f"{file.name} nests JSON too deeply") from exc


def _relevant_pairs(relevant: Mapping[str, object], file: Path) -> list[tuple[str, str]]:
    pairs = []
    for query_id, docs in relevant.items():
        if not isinstance(docs, list) or not all(isinstance(d, str | int) for d in docs):
            raise DatasetError(f"{file.name}: relevant_docs[{quoted(query_id)}] must be a list of document ids")
        pairs += [(str(query_id), str(d)) for d in docs]
    return pairs


def load_llamaindex_json(path: str | Path, name: str | None = None) -> TrainingData:
    """Read a LlamaIndex ``EmbeddingQAFinetuneDataset`` JSON file (``queries``, ``corpus``, ``relevant_docs``).

    Raises:
        DatasetError: The file is missing, is not such a JSON object, or names unknown ids.
    """
    file = Path(path)
    _require_file(file, "LlamaIndex dataset")
    raw = _read_json(file)
    if not isinstance(raw, dict):
        raise DatasetError(f"{file.name} is not a JSON object (an EmbeddingQAFinetuneDataset)")
    missing = [key for key in ("queries", "corpus", "relevant_docs") if not isinstance(raw.get(key), dict)]
    if missing:
        raise DatasetError(f"{file.name} lacks the EmbeddingQAFinetuneDataset keys: {', '.join(missing)}")
    data = TrainingData(
        name=name or file.stem,
        queries={str(k): str(v) for k, v in raw["queries"].items()},
        corpus={str(k): str(v) for k, v in raw["corpus"].items()},
        pairs=_relevant_pairs(raw["relevant_docs"], file),
        source_hash=_file_hash(file),
    )
    data.check()
    return data


def save_llamaindex_json(data: TrainingData, path: str | Path) -> Path:
    """Write ``data`` as a LlamaIndex ``EmbeddingQAFinetuneDataset`` JSON file (negatives are not kept)."""
    positives = data.positives()
    payload = {
        "queries": {q: data.queries[q] for q in positives},
        "corpus": data.corpus,
        "relevant_docs": positives,
        "mode": "text",
    }
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
    return file


def load_query_logs(log_path: str | Path, corpus_path: str | Path, name: str | None = None) -> TrainingData:
    """Training data from search logs: each click is a positive, each shown-but-skipped result a negative.

    Args:
        log_path: JSONL with ``query``, ``clicked_doc_id`` and optional ``skipped_doc_ids`` (a list).
        corpus_path: JSONL corpus in BEIR form (``_id``, optional ``title``, ``text``).
        name: Dataset name; defaults to the log file's stem.

    Returns:
        One query per distinct normalised query text (ids ``log-0``, ``log-1``, ...).

    Raises:
        DatasetError: Missing files, bad lines, or ids not in the corpus.
    """
    logs, corpus_file = Path(log_path), Path(corpus_path)
    _require_file(logs, "query log")
    _require_file(corpus_file, "corpus")
    corpus = {}
    for number, row in read_jsonl_objects(corpus_file):
        title, text = str(row.get("title") or ""), str(row.get("text") or "")
        corpus[row_id(row, corpus_file, number)] = f"{title} {text}".strip() if title else text
    ids: dict[str, str] = {}
    queries: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    negatives: dict[str, list[str]] = {}
    for number, row in read_jsonl_objects(logs):
        clicked = row.get("clicked_doc_id")
        if not isinstance(row.get("query"), str) or isinstance(clicked, bool) or not isinstance(clicked, str | int):
            raise DatasetError(f"{logs.name} line {number}: expected 'query' and 'clicked_doc_id'")
        text = str(row["query"])
        qid = ids.setdefault(normalise_query(text), f"log-{len(ids)}")
        queries.setdefault(qid, text)
        pairs.append((qid, str(row["clicked_doc_id"])))
        skipped = row.get("skipped_doc_ids") or []
        if not isinstance(skipped, list) or not all(isinstance(d, str | int) for d in skipped):
            raise DatasetError(f"{logs.name} line {number}: 'skipped_doc_ids' must be a list of document ids")
        negatives.setdefault(qid, []).extend(str(d) for d in skipped)
    data = TrainingData(
        name=name or logs.stem,
        queries=queries,
        corpus=corpus,
        pairs=pairs,
        negatives={q: list(dict.fromkeys(n)) for q, n in negatives.items() if n},
        source_hash=_file_hash(logs, corpus_file),
    )
    data.check()
    return deduplicate(data)


def deduplicate(data: TrainingData) -> TrainingData:
    """Merge queries with the same normalised text and drop repeated (query, positive) pairs.

    The first query id of each text is kept; a clicked document is never also a negative.
    """
    canonical: dict[str, str] = {}
    rename: dict[str, str] = {}
    for qid in data.query_ids():
        rename[qid] = canonical.setdefault(normalise_query(data.queries[qid]), qid)
    pairs = list(dict.fromkeys((rename[q], d) for q, d in data.pairs))
    positive = {(q, d) for q, d in pairs}
    negatives: dict[str, list[str]] = {}
    for qid, docs in data.negatives.items():
        target = rename.get(qid, qid)
        merged = negatives.setdefault(target, [])
        merged.extend(d for d in docs if (target, d) not in positive and d not in merged)
    kept = set(rename.values())
    return TrainingData(
        name=data.name,
        queries={q: t for q, t in data.queries.items() if q in kept or q not in rename},
        corpus=data.corpus,
        pairs=pairs,
        negatives={q: n for q, n in negatives.items() if n},
        source_hash=data.source_hash,
    )
