"""The public names users' code imports (SPEC §2) exist, and __all__ does not drift."""

from __future__ import annotations

import rag_factory.models.embedding as embedding
from rag_factory.models.embedding import ABTestingFramework, CustomModelLoader, ModelRegistry
from rag_factory.models.evaluation.ab_testing import ABTestingFramework as FrameworkImpl


def test_seed_names_are_importable_from_the_embedding_package() -> None:
    assert ABTestingFramework is FrameworkImpl
    assert callable(CustomModelLoader) and callable(ModelRegistry)


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(embedding) if not name.startswith("_") and name[0].isupper()}
    assert set(embedding.__all__) == public | {"ABTestingFramework"}
    for name in embedding.__all__:
        assert getattr(embedding, name) is not None


def test_seed_ab_scenario_through_the_embedding_package() -> None:
    from rag_factory.models.embedding import ABTestConfig

    framework = ABTestingFramework(seed=1)
    framework.start_test(ABTestConfig(test_name="t", model_a_id="a", model_b_id="b", traffic_split=0.5))
    share = sum(framework.should_use_model_b("t") for _ in range(10_000)) / 10_000
    assert 0.45 <= share <= 0.55
    framework.gradual_rollout("t", 1.7)
    assert framework.active_tests["t"].traffic_split == 1.0
