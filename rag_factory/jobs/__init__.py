"""Long-running jobs (fine-tuning): durable state, subprocess workers, event streams, cancellation."""
