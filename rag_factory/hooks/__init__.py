"""pluggy hooks: the specs, the default plugins and the plugin manager of the ``rag_factory`` project."""

from __future__ import annotations

from rag_factory.hooks.events import EmbeddingEvent, RolloutEvent
from rag_factory.hooks.manager import ENTRY_POINT_GROUP, PROJECT_NAME, build_plugin_manager
from rag_factory.hooks.specs import hookimpl, hookspec

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "EmbeddingEvent",
    "RolloutEvent",
    "build_plugin_manager",
    "hookimpl",
    "hookspec",
]
