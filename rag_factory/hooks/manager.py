"""Build the plugin manager: specs, built-in defaults, then third-party plugins from entry points."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal

import pluggy

from rag_factory.hooks import defaults, specs

logger = logging.getLogger(__name__)

PROJECT_NAME = "rag_factory"
ENTRY_POINT_GROUP = "rag_factory"


def build_plugin_manager(
    side: Literal["sidecar", "plugin"] = "sidecar",
    *,
    load_entry_points: bool = True,
    plugins: Iterable[object] = (),
) -> pluggy.PluginManager:
    """A plugin manager for one process.

    Args:
        side: "sidecar" adds the sidecar hooks; "plugin" (the client) has only the observer hooks.
        load_entry_points: Load third-party plugins from the ``rag_factory`` entry-point group.
        plugins: Extra plugin objects to register (after the defaults, so they take precedence).

    Returns:
        The manager; ``check_pending()`` has verified that every implementation has a spec.
    """
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(specs.ObserverSpecs)
    if side == "sidecar":
        manager.add_hookspecs(specs.SidecarSpecs)
        manager.register(defaults.DefaultPreprocessing(), name="rag_factory.default_preprocessing")
    if load_entry_points:
        loaded = manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        if loaded:
            logger.info("loaded %d plugin(s) from entry points", loaded)
    for plugin in plugins:
        manager.register(plugin)
    manager.check_pending()
    return manager


def notify_safely(hook: pluggy.HookCaller, **kwargs: object) -> None:
    """Call an observer hook; a failing observer is logged and never breaks the caller."""
    try:
        hook(**kwargs)
    except Exception:
        logger.exception("a rag_factory plugin failed in %s", hook.name)
