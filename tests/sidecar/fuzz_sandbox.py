"""The temporary folder that fuzzed requests may name: hostile files and datasets, and nothing outside it.

Every field or option of a fuzzed request that names a file only ever names a path in a :class:`Sandbox`,
so no request can make a defective server read, overwrite or delete a real system path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag_factory.data import bundled_dataset
from rag_factory.data.beir import load_beir, write_beir


@dataclass(frozen=True)
class Sandbox:
    """A temporary folder holding the only files fuzzed requests may name.

    It holds the hostile cases a server must survive: nothing at all, an empty folder, a plain file, a
    FIFO (reading it blocks forever), a folder with a FIFO inside, datasets with broken lines, a valid tiny
    dataset (so deep validation is reached) and a small artifact. ``extra`` paths (a real ONNX export in a
    temporary folder) may be added by the caller.
    """

    root: Path
    paths: tuple[str, ...]
    tiny_dataset: Path

    @classmethod
    def create(cls, root: Path, extra: Sequence[Path] = ()) -> Sandbox:
        """Fill ``root`` and return the sandbox.

        Raises:
            ValueError: ``root`` or an ``extra`` path is not inside the system's temporary folder.
        """
        temporary = Path(tempfile.gettempdir()).resolve()
        outside = [str(path) for path in (root, *extra) if not path.resolve().is_relative_to(temporary)]
        if outside:
            raise ValueError(f"fuzzed requests may only name temporary paths; not temporary: {outside}")
        root.mkdir(parents=True, exist_ok=True)
        (root / "empty-dir").mkdir(exist_ok=True)
        (root / "notes.txt").write_text("not a model, not a dataset\n")
        _fifo(root / "pipe")
        tiny = write_tiny_beir(root / "tiny-beir")
        _broken_datasets(root, tiny)
        artifact = root / "artifact"
        artifact.mkdir(exist_ok=True)
        (artifact / "model.onnx").write_bytes(os.urandom(2048))
        (root / "artifact-with-fifo").mkdir(exist_ok=True)
        _fifo(root / "artifact-with-fifo" / "model.onnx")
        names = (
            "missing", "empty-dir", "notes.txt", "pipe", "tiny-beir", "beir-no-id", "beir-bad-score",
            "beir-bad-utf8", "beir-not-object", "beir-fifo", "artifact", "artifact-with-fifo",
        )  # fmt: skip
        paths = tuple(str(root / name) for name in names) + tuple(str(path) for path in extra)
        return cls(root=root, paths=paths, tiny_dataset=tiny)


def _fifo(path: Path) -> None:
    if not path.exists():
        os.mkfifo(path)


def write_tiny_beir(folder: Path, n_train: int = 24, n_test: int = 8, n_distractors: int = 24) -> Path:
    """A small valid BEIR dataset cut from the bundled SciFact subset (cheap to evaluate or validate)."""
    full = load_beir(bundled_dataset("scifact_mini"))
    qrels = {
        split: dict(list(full.split(split).items())[:count]) for split, count in (("train", n_train), ("test", n_test))
    }
    judged = {doc for split in qrels.values() for docs in split.values() for doc in docs}
    extra = [doc for doc in full.corpus if doc not in judged][:n_distractors]
    corpus = {doc: full.corpus[doc] for doc in [*sorted(judged), *extra]}
    queries = {q: full.queries[q] for split in qrels.values() for q in split}
    return write_beir(folder, corpus, queries, qrels)


def _broken_datasets(root: Path, tiny: Path) -> None:
    # Each is the tiny dataset with one defect a client may send (issue 18, item 13).
    corpus = (tiny / "corpus.jsonl").read_bytes()
    queries = (tiny / "queries.jsonl").read_bytes()
    qrels = (tiny / "qrels" / "test.tsv").read_bytes()
    defects = {
        "beir-no-id": (corpus + b'{"title": "no id", "text": "a line without _id"}\n', queries, qrels),
        "beir-bad-score": (corpus, queries, qrels + b"q1\td1\tvery relevant\n"),
        "beir-bad-utf8": (corpus + b'{"_id": "bad", "text": "\xff\xfe\xc3\x28"}\n', queries, qrels),
        "beir-not-object": (corpus + b"[1, 2, 3]\n", queries, qrels),
    }
    for name, (corpus_bytes, query_bytes, qrels_bytes) in defects.items():
        folder = root / name
        (folder / "qrels").mkdir(parents=True, exist_ok=True)
        (folder / "corpus.jsonl").write_bytes(corpus_bytes)
        (folder / "queries.jsonl").write_bytes(query_bytes)
        (folder / "qrels" / "test.tsv").write_bytes(qrels_bytes)
    fifo = root / "beir-fifo"
    (fifo / "qrels").mkdir(parents=True, exist_ok=True)
    _fifo(fifo / "corpus.jsonl")  # a reader blocks until someone writes: the server must refuse it
    (fifo / "queries.jsonl").write_bytes(queries)
    (fifo / "qrels" / "test.tsv").write_bytes(qrels)


def release_fifos(sandbox: Sandbox) -> int:
    """Open every FIFO of the sandbox for writing and close it, so threads blocked reading one get EOF.

    Only for teardown: a server thread stuck on a FIFO would otherwise keep the test process from exiting.
    Returns how many FIFOs had a reader waiting.
    """
    released = 0
    for path in sandbox.root.rglob("*"):
        if not path.is_fifo():
            continue
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: no reader is waiting
            continue
        released += 1
    return released
