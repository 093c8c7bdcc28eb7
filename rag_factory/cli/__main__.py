"""``python -m rag_factory.cli``: the same as the ``rag-factory`` console script."""

from __future__ import annotations

from rag_factory.cli import main

raise SystemExit(main())
