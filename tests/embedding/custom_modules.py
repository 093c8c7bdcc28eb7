"""A small custom PyTorch encoder, standing in for a user's own architecture in loader tests."""

from __future__ import annotations

import torch


class BagOfEmbeddings(torch.nn.Module):
    """Token embeddings from a lookup table and a projection: ``(batch, tokens) -> (batch, tokens, dim)``."""

    def __init__(self, vocab_size: int = 30522, dim: int = 32) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(vocab_size, dim)
        self.projection = torch.nn.Linear(dim, dim)
        with torch.no_grad():  # identity, so tests can compute the expected output by hand
            self.projection.weight.copy_(torch.eye(dim))
            self.projection.bias.zero_()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.projection(self.table(input_ids)) * attention_mask.unsqueeze(-1)
