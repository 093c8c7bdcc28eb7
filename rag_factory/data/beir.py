"""Load retrieval datasets in BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rag_factory.errors import DatasetError, describe_choices


@dataclass(frozen=True)
class Document:
    """One corpus entry."""

    doc_id: str
    title: str
    text: str

    def as_text(self) -> str:
        """Title and body joined the way BEIR evaluations embed documents."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass
class BeirDataset:
    """A corpus, its queries and relevance judgements per split."""

    name: str
    path: Path
    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # split -> qid -> doc -> grade

    def split(self, name: str) -> dict[str, dict[str, int]]:
        """Relevance judgements of one split.

        Raises:
            DatasetError: The split has no qrels file.
        """
        if name not in self.qrels:
            raise DatasetError(
                f"dataset {self.name!r} has no qrels for split {name!r}; splits: {describe_choices(self.qrels)}"
            )
        return self.qrels[name]

    def content_hash(self) -> str:
        """sha256 over the dataset files, to tie results and caches to exact data."""
        digest = hashlib.sha256()
        for file in sorted(self.path.rglob("*")):
            if file.is_file() and file.suffix in (".jsonl", ".tsv"):
                digest.update(file.relative_to(self.path).as_posix().encode())
                digest.update(file.read_bytes())
        return digest.hexdigest()


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path.name} line {number} is not valid JSON: {exc.msg}") from exc
    return rows


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for number, row in enumerate(reader, start=1):
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise DatasetError(f"{path} line {number}: expected 'query-id corpus-id score'")
            qrels.setdefault(row[0], {})[row[1]] = int(float(row[2]))
    return qrels


def load_beir(path: str | Path, *, strict: bool = True) -> BeirDataset:
    """Load a BEIR-layout dataset.

    Args:
        path: Directory holding ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/*.tsv``.
        strict: Refuse qrels that name unknown queries or documents. With ``strict=False`` those
            judgements are dropped instead (the count is in the error message when strict).

    Raises:
        DatasetError: Missing files, invalid lines, or (when strict) dangling qrels ids.
    """
    root = Path(path)
    missing = [name for name in ("corpus.jsonl", "queries.jsonl", "qrels") if not (root / name).exists()]
    if missing:
        raise DatasetError(f"dataset {str(root)!r} is missing {', '.join(missing)} (BEIR layout expected)")
    corpus = {
        str(row["_id"]): Document(str(row["_id"]), str(row.get("title") or ""), str(row.get("text") or ""))
        for row in _read_jsonl(root / "corpus.jsonl")
    }
    queries = {str(row["_id"]): str(row["text"]) for row in _read_jsonl(root / "queries.jsonl")}
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    for file in sorted((root / "qrels").glob("*.tsv")):
        split = _read_qrels(file)
        unknown_queries = [q for q in split if q not in queries]
        unknown_docs = {d for judged in split.values() for d in judged if d not in corpus}
        if (unknown_queries or unknown_docs) and strict:
            raise DatasetError(
                f"qrels/{file.name} names {len(unknown_queries)} unknown query ids and {len(unknown_docs)} "
                f"unknown document ids (e.g. {describe_choices([*unknown_queries, *unknown_docs], 3)}); "
                "fix the files or load with strict=False to drop them"
            )
        qrels[file.stem] = {
            q: {d: g for d, g in judged.items() if d in corpus}
            for q, judged in split.items()
            if q in queries and any(d in corpus for d in judged)
        }
    return BeirDataset(name=root.name, path=root, corpus=corpus, queries=queries, qrels=qrels)


def write_beir(
    folder: str | Path,
    corpus: Mapping[str, Document],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, Mapping[str, int]]],
) -> Path:
    """Write a dataset in BEIR layout, the inverse of :func:`load_beir`.

    Args:
        folder: Where to write (created if needed; existing files of the layout are replaced).
        corpus: Documents by id, written in this order.
        queries: Query texts by id.
        qrels: Split -> query id -> document id -> relevance grade; one ``qrels/<split>.tsv`` each.

    Returns:
        ``folder`` as a path.
    """
    root = Path(folder)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for doc_id, doc in corpus.items():
            handle.write(json.dumps({"_id": doc_id, "title": doc.title, "text": doc.text}) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for query_id, text in queries.items():
            handle.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    for split, judged in qrels.items():
        rows = [f"{q}\t{d}\t{grade}" for q, docs in judged.items() for d, grade in docs.items()]
        (root / "qrels" / f"{split}.tsv").write_text("\n".join(["query-id\tcorpus-id\tscore", *rows]) + "\n")
    return root

