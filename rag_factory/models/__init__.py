"""Embedding models: loading, registry, training, evaluation and monitoring."""
