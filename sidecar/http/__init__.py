"""The HTTP API of the sidecar (OpenAI embeddings, probes, info, metrics), next to gRPC over the same engine."""
