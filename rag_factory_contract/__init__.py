"""The gRPC contract of rag-factory (package rag_factory.v1), generated from protos/; do not edit."""
