"""Shared test configuration: every async test runs on asyncio and on trio.

Also the shared real-TLS servers (see ``tests/servers.py`` for how to use them).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .servers import ScriptedApp, ScriptedServer, TLSFiles, make_tls_files, serve_asgi


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A trustme CA, a server certificate for 127.0.0.1 and client certificates, on disk."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def mtls_server(tls_files: TLSFiles) -> Iterator[ScriptedServer]:
    """One mutual-TLS server (and a plain-HTTP twin) for the whole session; use ``scripted``."""
    app = ScriptedApp()
    with (
        serve_asgi(app, tls=tls_files, require_client_cert=True) as base_url,
        serve_asgi(app, tls=None) as http_base_url,
    ):
        yield ScriptedServer(base_url=base_url, http_base_url=http_base_url, app=app, tls=tls_files)


@pytest.fixture
def scripted(mtls_server: ScriptedServer) -> Iterator[ScriptedServer]:
    """The session's mutual-TLS server with its app reset for this test."""
    mtls_server.app.reset()
    yield mtls_server
    mtls_server.app.reset()


@pytest.fixture
def scopes(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The deadlines of the cancel scopes the retry layer opens around attempts."""
    from paykit_async.pipeline import retry

    opened: list[float] = []
    real = retry.deadline_scope

    def counting(clock: object, deadline: float) -> object:
        opened.append(deadline)
        return real(clock, deadline)  # type: ignore[arg-type]

    monkeypatch.setattr(retry, "deadline_scope", counting)
    return opened
