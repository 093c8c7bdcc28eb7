"""Hard-negative mining: ranking, the false-negative margin, explicit negatives and the on-disk cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from rag_factory.errors import InvalidArgumentError
from rag_factory.models.training.examples import TrainingData
from rag_factory.models.training.mining import mine_hard_negatives

# Unit vectors chosen so the query "q" scores: pos 0.9, near-duplicate 0.88, hard 0.7, mid 0.5, far 0.1.
_SCORES = {"q": 1.0, "pos": 0.9, "dup": 0.88, "hard": 0.7, "mid": 0.5, "far": 0.1}


class CountingEncoder:
    """Maps each text to a fixed 2-d unit vector whose cosine to the query is ``_SCORES``; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        rows = [[s, float(np.sqrt(1 - s * s))] for s in (_SCORES[t] for t in texts)]
        return np.asarray(rows, dtype=np.float32)


def _data(negatives: dict[str, list[str]] | None = None) -> TrainingData:
    corpus = {name: name for name in ("pos", "dup", "hard", "mid", "far")}
    return TrainingData("toy", {"q1": "q"}, corpus, [("q1", "pos")], negatives or {})


def test_mining_skips_candidates_within_the_margin_of_the_positive() -> None:
    mined = mine_hard_negatives(_data(), CountingEncoder(), model_key="toy", num_negatives=2, top_k=4, margin=0.95)
    assert mined == {"q1": ["hard", "mid"]}  # "dup" scores 0.88 > 0.95 * 0.9 and is skipped


def test_a_margin_of_one_keeps_the_near_duplicate() -> None:
    mined = mine_hard_negatives(_data(), CountingEncoder(), model_key="toy", num_negatives=2, top_k=4, margin=1.0)
    assert mined == {"q1": ["dup", "hard"]}


def test_logged_negatives_come_first() -> None:
    mined = mine_hard_negatives(_data({"q1": ["far"]}), CountingEncoder(), model_key="toy", num_negatives=2, top_k=4)
    assert mined == {"q1": ["far", "hard"]}


def test_mined_sets_are_cached_on_disk(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    first = mine_hard_negatives(_data(), encoder, model_key="toy", num_negatives=2, top_k=4, cache_dir=tmp_path)
    calls = encoder.calls
    again = mine_hard_negatives(_data(), encoder, model_key="toy", num_negatives=2, top_k=4, cache_dir=tmp_path)
    assert again == first
    assert encoder.calls == calls
    other = mine_hard_negatives(_data(), encoder, model_key="toy", num_negatives=1, top_k=4, cache_dir=tmp_path)
    assert other == {"q1": ["hard"]} and encoder.calls > calls  # other parameters, another cache entry


@pytest.mark.parametrize(
    "kwargs", [{"margin": 0.0}, {"num_negatives": 5, "top_k": 2}], ids=["zero-margin", "top-k-too-small"]
)
def test_bad_mining_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidArgumentError):
        mine_hard_negatives(_data(), CountingEncoder(), model_key="toy", **kwargs)  # type: ignore[arg-type]
