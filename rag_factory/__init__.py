"""RAG Factory: fine-tune, serve, compare and roll out domain-specific embedding models."""
