"""Fixtures for the worker tests: the private redis-server of the reliability tests."""

from __future__ import annotations

from ..reliability.conftest import redis_prefix, redis_url, worker_env

__all__ = ["redis_prefix", "redis_url", "worker_env"]
