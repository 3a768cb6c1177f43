"""Fixtures for the reliability tests: a real redis-server started on a free port in a temp dir."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from paykit_async.pipeline.stores import IdempotencyStore, MemoryStore, RedisStore, SQLiteStore

from ..cli.helpers import free_port


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private redis-server on a free port (no persistence); skipped when it is not installed."""
    executable = shutil.which("redis-server")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed, and CI is set: the Redis store must be tested")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    for _ in range(5):
        port = free_port()
        process = subprocess.Popen(
            [
                executable,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(directory),
                "--save", "",
                "--appendonly", "no",
                "--logfile", str(directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline and not _ping(port):
            time.sleep(0.02)
        if process.poll() is None and _ping(port):
            return process, port
        process.kill()
        process.wait()
    pytest.fail("redis-server did not start")


def stop_redis(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a private redis-server. Skipped when redis-server is missing — but not on CI."""
    process, port = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_redis(process)


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix of this test's own, so tests sharing the server never see each other's keys."""
    return f"test:{request.node.nodeid}:{time.monotonic_ns()}:"


@pytest.fixture
def worker_env() -> dict[str, str]:
    """Environment for worker processes: the repository root importable."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[IdempotencyStore]:
    """Each store in turn (Redis against the private redis-server), closed afterwards."""
    made: IdempotencyStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "keys.db")
    else:
        url = request.getfixturevalue("redis_url")
        made = RedisStore(url, prefix=request.getfixturevalue("redis_prefix"), ttl=600)
    yield made
    await made.aclose()
