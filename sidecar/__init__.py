"""The gRPC sidecar: builds and runs the server over the core library."""
