"""Shoal: load-balancer-as-a-service for private clouds."""

__version__ = "0.1.0"
