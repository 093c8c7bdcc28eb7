"""Monitoring: Prometheus metrics of serving and evaluation."""
