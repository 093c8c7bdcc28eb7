"""Thin gRPC servicers: convert the request, call the core, convert the result."""
