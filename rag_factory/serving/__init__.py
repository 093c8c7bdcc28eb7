"""Serving: the embedding engine behind the sidecar (routing, micro-batching, fallback, hooks)."""
