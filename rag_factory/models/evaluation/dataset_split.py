"""Load the BEIR split an evaluation scores, and count judgements that name unknown ids."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field

from rag_factory.data.beir import BeirDataset, _read_qrels, load_beir
from rag_factory.errors import DatasetError, describe_choices, quoted


class DanglingQrels(BaseModel):
    """Judgements of the split that name ids missing from the dataset (dropped before scoring)."""

    judgements: int = Field(default=0, description="Judgements dropped.")
    unknown_queries: int = Field(default=0, description="Distinct query ids not in queries.jsonl.")
    unknown_documents: int = Field(default=0, description="Distinct document ids not in corpus.jsonl.")
    examples: list[str] = Field(default_factory=list, description="A few of the unknown ids.")


SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def load_split(
    dataset_dir: str | Path, split: str, *, allow_dangling_qrels: bool = False
) -> tuple[BeirDataset, dict[str, dict[str, int]], DanglingQrels]:
    """Load a BEIR dataset and one split's judgements, counting judgements with unknown ids.

    Raises:
        DatasetError: Missing files, no qrels for ``split``, a split with no judged query, or dangling
            judgements while ``allow_dangling_qrels`` is False.
    """
    if not SPLIT_NAME.fullmatch(split):
        # The name becomes a file name: no separators, no "..", nothing longer than a file name may be.
        raise DatasetError(
            f"split {quoted(split)} is not a split name: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    dataset = load_beir(dataset_dir, strict=False)
    qrels_file = dataset.path / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        raise DatasetError(
            f"dataset {dataset.name!r} has no qrels for split {split!r}; splits: {describe_choices(dataset.qrels)}"
        )
    raw = _read_qrels(qrels_file)
    unknown_queries = sorted(q for q in raw if q not in dataset.queries)
    unknown_docs = sorted({d for judged in raw.values() for d in judged if d not in dataset.corpus})
    dropped = sum(1 for q, judged in raw.items() for d in judged if q not in dataset.queries or d not in dataset.corpus)
    dangling = DanglingQrels(
        judgements=dropped,
        unknown_queries=len(unknown_queries),
        unknown_documents=len(unknown_docs),
        examples=[*unknown_queries[:3], *unknown_docs[:3]],
    )
    if dropped and not allow_dangling_qrels:
        raise DatasetError(
            f"qrels/{split}.tsv of {dataset.name!r} has {dropped} judgements naming ids not in the dataset "
            f"({len(unknown_queries)} unknown queries, {len(unknown_docs)} unknown documents, e.g. "
            f"{', '.join(dangling.examples)}); pass allow_dangling_qrels=True (--allow-dangling-qrels) "
            "to drop them and go on",
            dataset=dataset.name,
        )
    qrels = dataset.split(split)
    if not qrels:
        raise DatasetError(f"split {split!r} of {dataset.name!r} has no judged queries")
    return dataset, qrels, dangling
