"""Build the bundled SciFact subset (rag_factory/data/bundled/scifact_mini) from ../shared/data/scifact.

Deterministic: the same source gives the same subset. Run from the repo root:
    python scripts/make_scifact_mini.py ../shared/data/scifact
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

TRAIN_QUERIES = 250
TEST_QUERIES = 100
DISTRACTORS = 700


def main(source: Path, target: Path) -> None:
    rng = random.Random(13)
    corpus = [json.loads(line) for line in (source / "corpus.jsonl").open()]
    queries = {q["_id"]: q for q in map(json.loads, (source / "queries.jsonl").open())}
    splits: dict[str, dict[str, list[str]]] = {}
    for split in ("train", "test"):
        rows = [line.rstrip("\n").split("\t") for line in (source / "qrels" / f"{split}.tsv").open()][1:]
        judged: dict[str, list[str]] = {}
        for qid, did, _ in rows:
            judged.setdefault(qid, []).append(did)
        keep = sorted(rng.sample(sorted(judged), TRAIN_QUERIES if split == "train" else TEST_QUERIES), key=int)
        splits[split] = {q: judged[q] for q in keep}
    relevant = {d for split in splits.values() for docs in split.values() for d in docs}
    others = sorted(d["_id"] for d in corpus if d["_id"] not in relevant)
    keep_docs = relevant | set(rng.sample(others, DISTRACTORS))
    if target.exists():
        shutil.rmtree(target)
    (target / "qrels").mkdir(parents=True)
    with (target / "corpus.jsonl").open("w") as out:
        for doc in corpus:
            if doc["_id"] in keep_docs:
                out.write(json.dumps(doc, ensure_ascii=False) + "\n")
    kept_queries = {q for split in splits.values() for q in split}
    with (target / "queries.jsonl").open("w") as out:
        for qid, query in queries.items():
            if qid in kept_queries:
                out.write(json.dumps(query, ensure_ascii=False) + "\n")
    for split, judged in splits.items():
        with (target / "qrels" / f"{split}.tsv").open("w") as out:
            out.write("query-id\tcorpus-id\tscore\n")
            for qid, docs in judged.items():
                for did in docs:
                    out.write(f"{qid}\t{did}\t1\n")
    print(f"{len(keep_docs)} documents, {len(kept_queries)} queries -> {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parents[1] / "rag_factory/data/bundled/scifact_mini")
