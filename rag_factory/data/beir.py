"""Load retrieval datasets in BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rag_factory.errors import DatasetError, describe_choices, quoted


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
                f"dataset {quoted(self.name)} has no qrels for split {quoted(name)}; "
                f"splits: {describe_choices(self.qrels)}"
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


# Relevance grades are small integers; anything beyond int32 is a broken file, not a grade.
_MAX_GRADE = 2**31 - 1


def _where(path: Path, number: int) -> str:
    # Dataset errors name the file relative to the dataset folder, never the server's whole path.
    where = f"{path.parent.name}/{path.name}" if path.parent.name == "qrels" else path.name
    return f"{where} line {number}"


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    # Read as bytes and decode line by line, so a bad byte is reported with its line number.
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DatasetError(f"{_where(path, number)} is not valid UTF-8 (byte {exc.start + 1})") from exc
    except OSError as exc:
        raise DatasetError(f"{path.name} cannot be read: {exc.strerror or type(exc).__name__}") from exc


def read_jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """``(line number, object)`` for each non-blank line of a JSON Lines file.

    Raises:
        DatasetError: A line is not valid UTF-8, not valid JSON, or not a JSON object; the file cannot
            be read. The message names the file and the line.
    """
    for number, line in _decoded_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{_where(path, number)} is not valid JSON: {exc.msg}") from exc
        except RecursionError as exc:  # "[[[[..." nested deeper than the parser's stack
            raise DatasetError(f"{_where(path, number)} nests JSON too deeply") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{_where(path, number)} is not a JSON object")
        yield number, row


def row_id(row: Mapping[str, object], path: Path, number: int) -> str:
    """The ``_id`` of a dataset row, as a string.

    Raises:
        DatasetError: ``_id`` is missing, or is not a string or an integer.
    """
    value = row.get("_id")
    if value is None:
        raise DatasetError(f"{_where(path, number)} has no '_id'")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DatasetError(f"{_where(path, number)}: '_id' must be a string or an integer")
    return str(value)


def _query_text(row: Mapping[str, object], path: Path, number: int) -> str:
    text = row.get("text")
    if not isinstance(text, str):
        raise DatasetError(f"{_where(path, number)}: a query needs a 'text' string")
    return text


def _grade(value: str, path: Path, number: int) -> int:
    try:
        grade = float(value)
    except ValueError:
        raise DatasetError(f"{_where(path, number)}: the score must be a number") from None
    if not math.isfinite(grade) or abs(grade) > _MAX_GRADE:
        raise DatasetError(f"{_where(path, number)}: the score must be a finite number within ±{_MAX_GRADE}")
    return int(grade)


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for number, line in _decoded_lines(path):
        try:
            row = next(csv.reader([line.rstrip("\r\n")], delimiter="\t"), [])
        except csv.Error as exc:  # a field longer than csv's limit
            raise DatasetError(f"{_where(path, number)} is not a tab-separated row: {exc}") from exc
        if not row or (number == 1 and row[0] == "query-id"):
            continue
        if len(row) < 3:
            raise DatasetError(f"{_where(path, number)}: expected 'query-id corpus-id score'")
        qrels.setdefault(row[0], {})[row[1]] = _grade(row[2], path, number)
    return qrels


def _check_layout(root: Path) -> None:
    # A FIFO or device in place of a file would block the reading thread forever.
    try:
        missing = [name for name in ("corpus.jsonl", "queries.jsonl", "qrels") if not (root / name).exists()]
        if missing:
            raise DatasetError(f"dataset {quoted(str(root))} is missing {', '.join(missing)} (BEIR layout expected)")
        odd = [name for name in ("corpus.jsonl", "queries.jsonl") if not (root / name).is_file()]
        odd += [f"qrels/{file.name}" for file in sorted((root / "qrels").glob("*.tsv")) if not file.is_file()]
    except OSError as exc:  # a name too long, a folder without permission
        raise DatasetError(f"dataset {quoted(str(root))} cannot be read: {exc.strerror or type(exc).__name__}") from exc
    if not (root / "qrels").is_dir():
        odd.append("qrels")
    if odd:
        raise DatasetError(f"dataset {root.name!r}: {', '.join(odd)} must be regular files (qrels a folder)")


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
    _check_layout(root)
    corpus: dict[str, Document] = {}
    for number, row in read_jsonl_objects(root / "corpus.jsonl"):
        doc_id = row_id(row, root / "corpus.jsonl", number)
        corpus[doc_id] = Document(doc_id, str(row.get("title") or ""), str(row.get("text") or ""))
    queries = {
        row_id(row, root / "queries.jsonl", number): _query_text(row, root / "queries.jsonl", number)
        for number, row in read_jsonl_objects(root / "queries.jsonl")
    }
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    for file in sorted((root / "qrels").glob("*.tsv")):
        split = _read_qrels(file)
        unknown_queries = [q for q in split if q not in queries]
        unknown_docs = {d for judged in split.values() for d in judged if d not in corpus}
        if (unknown_queries or unknown_docs) and strict:
            examples = describe_choices([quoted(i, 40) for i in (*unknown_queries, *unknown_docs)], 3)
            raise DatasetError(
                f"qrels/{file.name} names {len(unknown_queries)} unknown query ids and {len(unknown_docs)} "
                f"unknown document ids (e.g. {examples}); "
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
