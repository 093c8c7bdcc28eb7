"""Offline evaluation: retrieval metrics, significance tests, embedding-space metrics, error analysis."""
