"""Compatibility path of ``ABTestingFramework`` (SPEC §2); the A/B framework lives in ``rag_factory.experiments``."""

from __future__ import annotations

from rag_factory.experiments.framework import ABTestingFramework

__all__ = ["ABTestingFramework"]
