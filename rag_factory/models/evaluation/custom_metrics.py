"""Custom metrics of an evaluation: what the ``rag_factory_custom_metrics`` plugins contribute."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import pluggy

logger = logging.getLogger(__name__)


def collect_custom_metrics(
    plugin_manager: pluggy.PluginManager, model_id: str, values: Mapping[str, Sequence[float]], warnings: list[str]
) -> dict[str, float]:
    """Ask every ``rag_factory_custom_metrics`` plugin (context ``"evaluation"``) and merge the answers.

    Plugins registered later win on a name clash, as they do for every other hook. A plugin that
    raises, or returns a value that is not a finite number, is logged and noted in ``warnings``.

    Args:
        plugin_manager: Plugins to ask.
        model_id: The evaluated model.
        values: Metric name -> per-query values, in one query order for every metric.
        warnings: Receives a line for each failing plugin or ignored value.

    Returns:
        Metric name -> value.
    """
    try:
        answers = plugin_manager.hook.rag_factory_custom_metrics(model_id=model_id, context="evaluation", values=values)
    except Exception as exc:
        logger.exception("a rag_factory_custom_metrics plugin failed")
        warnings.append(f"a custom-metrics plugin failed ({type(exc).__name__}: {exc}); its metrics are missing")
        return {}
    merged: dict[str, float] = {}
    for answer in reversed(answers):  # pluggy answers newest plugin first; apply oldest first
        for name, value in dict(answer or {}).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                warnings.append(f"custom metric {name!r} ignored: {value!r} is not a finite number")
                continue
            merged[str(name)] = float(value)
    return merged
