"""Built-in behaviour, shipped as a plugin so third-party plugins can override it."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from rag_factory.hooks.specs import hookimpl


class DefaultPreprocessing:
    """Unicode NFC normalisation and whitespace collapsing, for any domain."""

    @hookimpl
    def rag_factory_preprocess_texts(self, texts: Sequence[str]) -> list[str]:
        # NFC keeps visually identical strings identical to the tokenizer; runs of whitespace
        # carry no meaning for sentence embeddings but cost tokens.
        return [" ".join(unicodedata.normalize("NFC", text).split()) for text in texts]
