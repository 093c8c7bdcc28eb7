"""Client-side hooks: a plugin installed through a real ``rag_factory`` entry point observes each embedding call."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugin import RagFactoryEmbedding
from rag_factory.hooks import EmbeddingEvent, hookimpl

pytestmark = pytest.mark.slow

TEXTS = ["Autophagy declines in aged organisms.", "Aspirin lowers fever."]


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A distribution on sys.path whose ``rag_factory`` entry point is a module recording every event."""
    (tmp_path / "fake_rf_plugin.py").write_text(
        textwrap.dedent(
            '''
            """A third-party plugin, as pip would install it."""
            from rag_factory.hooks import hookimpl

            seen = []

            @hookimpl
            def rag_factory_on_embedding(event):
                seen.append(event)
            '''
        )
    )
    dist_info = tmp_path / "fake_rf_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-rf-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[rag_factory]\nfake = fake_rf_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import fake_rf_plugin

    yield fake_rf_plugin
    sys.modules.pop("fake_rf_plugin", None)


def test_an_entry_point_plugin_observes_each_embedding_call(installed_plugin: Any, sidecar_address: str) -> None:
    embedding = RagFactoryEmbedding(address=sidecar_address, timeout_s=60)

    embedding.get_text_embedding_batch(TEXTS)

    (event,) = installed_plugin.seen
    assert embedding.plugin_manager.get_plugin("fake") is installed_plugin
    assert isinstance(event, EmbeddingEvent)
    assert (event.side, event.model_id, event.version, event.variant) == ("plugin", "minilm-onnx", "1.0.0", "")
    assert event.count == len(TEXTS)
    assert event.latency_ms > 0


def test_entry_points_are_skipped_when_plugins_are_off(installed_plugin: Any, sidecar_address: str) -> None:
    embedding = RagFactoryEmbedding(address=sidecar_address, timeout_s=60, load_plugins=False)

    embedding.get_query_embedding(TEXTS[0])

    assert embedding.plugin_manager.get_plugin("fake") is None
    assert installed_plugin.seen == []


def test_async_calls_are_observed_too(sidecar_address: str) -> None:
    seen: list[EmbeddingEvent] = []

    class Recorder:
        @hookimpl
        def rag_factory_on_embedding(self, event: EmbeddingEvent) -> None:
            seen.append(event)

    embedding = RagFactoryEmbedding(address=sidecar_address, timeout_s=60, load_plugins=False)
    embedding.plugin_manager.register(Recorder())

    asyncio.run(embedding.aget_query_embedding(TEXTS[0]))

    assert [(event.model_id, event.count) for event in seen] == [("minilm-onnx", 1)]


def test_a_failing_observer_never_fails_the_embedding(sidecar_address: str) -> None:
    class Broken:
        @hookimpl
        def rag_factory_on_embedding(self, event: EmbeddingEvent) -> None:
            raise RuntimeError("observer bug")

    embedding = RagFactoryEmbedding(address=sidecar_address, timeout_s=60, load_plugins=False)
    embedding.plugin_manager.register(Broken())

    assert len(embedding.get_query_embedding(TEXTS[0])) == 384
