"""Hook specifications of the ``rag_factory`` project; implementations may take fewer arguments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pluggy

from rag_factory.hooks.events import EmbeddingEvent, RolloutEvent

hookspec = pluggy.HookspecMarker("rag_factory")
hookimpl = pluggy.HookimplMarker("rag_factory")


class ObserverSpecs:
    """Hooks available in every process: the sidecar and the client plugin."""

    @hookspec
    def rag_factory_on_embedding(self, event: EmbeddingEvent) -> None:
        """Observe one embedding call (model, version, A/B variant, latency, count).

        Called after the call completes; every implementation is called, return values are ignored.
        An exception in an observer is logged and never fails the call.
        """


class SidecarSpecs:
    """Hooks called inside the sidecar."""

    @hookspec(firstresult=True)
    def rag_factory_preprocess_texts(self, texts: Sequence[str], domain: str, model_id: str) -> list[str] | None:
        """Rewrite texts before they are embedded (for example, expand abbreviations of a domain).

        Args:
            texts: The request's texts.
            domain: The request's domain ("" when none).
            model_id: The model that will embed them.

        Returns:
            The texts to embed (same length), or None to leave them to the next plugin. Stops at the
            first non-None result; plugins registered later are asked first, so a third-party plugin
            overrides the built-in default.
        """

    @hookspec
    def rag_factory_custom_metrics(
        self, model_id: str, context: str, values: Mapping[str, Sequence[float]]
    ) -> Mapping[str, float] | None:
        """Contribute custom metrics to an A/B analysis or an evaluation.

        Args:
            model_id: The model being measured.
            context: "ab_test" or "evaluation".
            values: Data the caller has per metric name (for example per-query scores).

        Returns:
            Metric name to value, or None. Results of all plugins are merged; later names win.
        """

    @hookspec
    def rag_factory_on_rollout(self, event: RolloutEvent) -> None:
        """React to a rollout event: a ramp step, a promotion or an automatic rollback.

        Every implementation is called; return values are ignored.
        """
