"""The asgi tests share the real redis-server of the reliability tests."""

from ..reliability.conftest import redis_url

__all__ = ["redis_url"]
