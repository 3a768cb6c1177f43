"""Client construction: credentials validated before any I/O, the key never shown."""

from __future__ import annotations

import pytest

from paykit_async.errors import ValidationError
from paykit_async.providers.payjs import PayJSClient

from .payjs_fixtures import KEY, MCHID


@pytest.mark.parametrize("mchid", ["", "0", "12 34", "1&2", 1234, None])
def test_bad_mchid_is_refused(mchid: object) -> None:
    with pytest.raises(ValidationError) as caught:
        PayJSClient(mchid, KEY)  # type: ignore[arg-type]
    assert caught.value.field == "mchid"


@pytest.mark.parametrize("key", ["", " padded ", None, b"bytes"])
def test_bad_key_is_refused_without_echoing_it(key: object) -> None:
    with pytest.raises(ValidationError) as caught:
        PayJSClient(MCHID, key)  # type: ignore[arg-type]
    assert caught.value.field == "key"
    if isinstance(key, str) and key.strip():
        assert key.strip() not in str(caught.value)


def test_bad_base_url_is_refused() -> None:
    with pytest.raises(ValidationError):
        PayJSClient(MCHID, KEY, base_url="ftp://payjs.cn")


def test_the_key_is_never_in_reprs() -> None:
    client = PayJSClient(MCHID, KEY)
    for text in (repr(client), repr(client.dialect), repr(client.pipeline.handler)):
        assert KEY not in text
    assert repr(client) == "<PayJSClient mchid='1230000109' base_url='https://payjs.cn'>"
