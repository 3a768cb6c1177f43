"""The idempotency store protocol (implemented by MemoryStore, SQLiteStore and RedisStore)."""
