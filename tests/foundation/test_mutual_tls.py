"""Mutual TLS against a real local server that requires a client certificate from the test CA."""

from __future__ import annotations

import os
import tempfile
import traceback
from pathlib import Path

import pytest

from paykit_async.errors import TransportError, ValidationError
from paykit_async.transport import ClientCertificate, TransportSettings, WireRequest, build_ssl_context

from ..servers import ScriptedServer, TLSFiles
from .transports import EVERY_LOOP_AND_TRANSPORT, TRANSPORTS

pytestmark = pytest.mark.anyio


async def _send_once(transport_name: str, settings: TransportSettings, url: str) -> int:
    transport = TRANSPORTS[transport_name]()
    transport.configure(settings)
    try:
        response = await transport.send(WireRequest(url=url, content=b"<xml/>"))
    finally:
        await transport.aclose()
    return response.status_code


@EVERY_LOOP_AND_TRANSPORT
@pytest.mark.parametrize("form", ["pem", "pem-encrypted", "pkcs12"])
async def test_trusted_client_certificate_is_accepted(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str, form: str
) -> None:
    if form == "pem":
        cert = ClientCertificate.from_pem(tls_files.client_cert_file, tls_files.client_key_file)
    elif form == "pem-encrypted":
        cert = ClientCertificate.from_pem(
            tls_files.client_cert_file,
            tls_files.client_key_encrypted_file,
            password=tls_files.client_key_password,
        )
    else:
        cert = ClientCertificate.from_pkcs12(tls_files.client_p12_file, tls_files.client_p12_password)
    scripted.app.reply_with(200, {}, b"accepted")
    settings = TransportSettings(certificate=cert, ca_file=tls_files.ca_file)

    status = await _send_once(transport_name, settings, f"{scripted.base_url}/secapi/pay/refund")

    assert status == 200
    assert [r.path for r in scripted.app.requests] == ["/secapi/pay/refund"]


@EVERY_LOOP_AND_TRANSPORT
@pytest.mark.parametrize("client_cert", ["missing", "untrusted"])
async def test_server_refusing_the_client_certificate_is_a_transport_error(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str, client_cert: str
) -> None:
    cert = None if client_cert == "missing" else tls_files.untrusted_client_certificate()
    scripted.app.respond = lambda _request: (200, {}, b"must never be served")
    settings = TransportSettings(certificate=cert, ca_file=tls_files.ca_file)

    with pytest.raises(TransportError):
        await _send_once(transport_name, settings, f"{scripted.base_url}/secapi/pay/refund")

    assert scripted.app.requests == []


@EVERY_LOOP_AND_TRANSPORT
async def test_untrusted_server_certificate_is_a_transport_error_before_sending(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    scripted.app.respond = lambda _request: (200, {}, b"must never be served")
    # The client trusts only the other CA, so the server's certificate does not verify.
    settings = TransportSettings(certificate=tls_files.client_certificate(), ca_file=tls_files.other_ca_file)

    with pytest.raises(TransportError) as caught:
        await _send_once(transport_name, settings, f"{scripted.base_url}/secapi/pay/refund")

    assert caught.value.sent is False
    assert caught.value.outcome_unknown is False
    assert "certificate verify failed" in str(caught.value).lower()
    assert scripted.app.requests == []


@EVERY_LOOP_AND_TRANSPORT
async def test_without_ca_file_a_private_ca_is_not_trusted(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    settings = TransportSettings(certificate=tls_files.client_certificate())

    with pytest.raises(TransportError) as caught:
        await _send_once(transport_name, settings, f"{scripted.base_url}/x")

    assert caught.value.sent is False


# --- ClientCertificate: secrets stay out of repr, messages and the disk --------------------------


def test_repr_shows_the_subject_but_no_key_material_or_password(tls_files: TLSFiles) -> None:
    pem = ClientCertificate.from_pem(
        tls_files.client_cert_file,
        tls_files.client_key_encrypted_file,
        password=tls_files.client_key_password,
    )
    p12 = ClientCertificate.from_pkcs12(tls_files.client_p12_file, tls_files.client_p12_password)
    key_body = Path(tls_files.client_key_file).read_text().splitlines()[1]
    for cert in (pem, p12):
        text = repr(cert)
        assert "paykit test merchant" in text
        assert "PRIVATE KEY" not in text
        assert "CERTIFICATE" not in text
        assert key_body not in text
        assert tls_files.client_key_password not in text
        assert tls_files.client_p12_password not in text
        assert repr(cert.password) not in text


def _full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def test_wrong_pkcs12_password_is_a_validation_error_without_the_password(tls_files: TLSFiles) -> None:
    wrong = "not-the-password-4711"
    with pytest.raises(ValidationError) as caught:
        ClientCertificate.from_pkcs12(tls_files.client_p12_file, wrong)
    assert caught.value.field == "cert"
    assert wrong not in _full_text(caught.value)
    assert tls_files.client_p12_password not in _full_text(caught.value)


def test_wrong_pem_key_password_is_a_validation_error_without_the_password(tls_files: TLSFiles) -> None:
    wrong = "not-the-password-4712"
    with pytest.raises(ValidationError) as caught:
        ClientCertificate.from_pem(
            tls_files.client_cert_file, tls_files.client_key_encrypted_file, password=wrong
        )
    assert wrong not in _full_text(caught.value)


def test_missing_certificate_file_is_a_validation_error(tmp_path: Path, tls_files: TLSFiles) -> None:
    with pytest.raises(ValidationError):
        ClientCertificate.from_pem(tmp_path / "absent.pem", tls_files.client_key_file)
    with pytest.raises(ValidationError):
        ClientCertificate.from_pkcs12(tmp_path / "absent.p12", "x")


def test_certificate_and_key_that_do_not_match_are_refused_when_loading(tls_files: TLSFiles) -> None:
    mismatched = ClientCertificate.from_pem(tls_files.client_cert_file, tls_files.untrusted_client_key_file)
    with pytest.raises(ValidationError):
        build_ssl_context(mismatched)


def test_loading_a_certificate_leaves_no_temporary_files(
    tls_files: TLSFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    created: list[tuple[str, int]] = []
    real_mkstemp = tempfile.mkstemp

    def recording_mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, path = real_mkstemp(*args, **kwargs)  # type: ignore[call-overload]
        created.append((path, os.stat(path).st_mode & 0o777))
        return fd, path

    monkeypatch.setattr(tempfile, "mkstemp", recording_mkstemp)
    p12 = ClientCertificate.from_pkcs12(tls_files.client_p12_file, tls_files.client_p12_password)
    pem = tls_files.client_certificate()

    build_ssl_context(p12, tls_files.ca_file)
    build_ssl_context(pem, tls_files.ca_file)

    assert len(created) == 4  # certificate and key, twice
    assert all(mode == 0o600 for _path, mode in created)
    assert not any(os.path.exists(path) for path, _mode in created)
    assert list(private_tmp.iterdir()) == []


def test_pkcs12_key_is_kept_encrypted_in_memory(tls_files: TLSFiles) -> None:
    p12 = ClientCertificate.from_pkcs12(tls_files.client_p12_file, tls_files.client_p12_password)
    assert b"ENCRYPTED PRIVATE KEY" in p12.key_pem
    assert p12.password is not None
    assert tls_files.client_p12_password.encode() != p12.password
