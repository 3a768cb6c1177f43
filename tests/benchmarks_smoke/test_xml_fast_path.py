"""The regular-expression fast path of ``decode_xml`` never disagrees with expat.

It was added to cut the cost of parsing every WeChat reply (see benchmarks/README.md); these
tests pin that it is taken for ordinary replies and that, on random and hostile documents, it
either gives exactly expat's result or steps aside so that expat decides.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from paykit_async.codecs.xml import _FlatParser, _parse_simple, decode_xml, encode_xml
from paykit_async.errors import DecodeError, ValidationError

REPLY = (
    "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg>"
    "<appid><![CDATA[wx8888888888888888]]></appid><refund_fee>100</refund_fee>"
    "<refund_channel><![CDATA[]]></refund_channel><empty></empty>\n"
    "<err_code_des><![CDATA[系统超时 a]b]]c]]></err_code_des></xml>"
).encode()


def _expat(body: bytes) -> dict[str, str] | str:
    try:
        return _FlatParser().parse(body)
    except DecodeError:
        return "DecodeError"


def test_an_ordinary_reply_takes_the_fast_path_and_matches_expat() -> None:
    fast = _parse_simple(REPLY)
    assert fast is not None
    assert fast == _expat(REPLY)
    assert fast["err_code_des"] == "系统超时 a]b]]c"
    assert fast["refund_channel"] == ""
    assert fast["empty"] == ""


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><xml><a>1</a></xml>',
        b"<!DOCTYPE xml [<!ENTITY e 'x'>]><xml><a>&e;</a></xml>",
        b"<xml><a>&amp;</a></xml>",
        b"<xml><a>x&#13;</a></xml>",
        b"<xml><a>x\ry</a></xml>",
        b"<xml><a><![CDATA[x\r\ny]]></a></xml>",
        b"<xml><a>1</a><a>2</a></xml>",
        b"<xml><a><b>1</b></a></xml>",
        b"<xml><a x='1'>1</a></xml>",
        b"<xml><!-- c --><a>1</a></xml>",
        b"<xml><a/></xml>",
        b"<xml>text<a>1</a></xml>",
        b"<xml><a>1</b></xml>",
        b"<xml><a><![CDATA[x]]><![CDATA[y]]></a></xml>",
        b"<xml><a>1</a></xml>\n",
        b"<xml><a>\x01</a></xml>",
        b"<xml><a>\xff</a></xml>",
        b"<xml><a>]]></a></xml>",
        b"<xml><a-b>1</a-b></xml>",
        b"\xef\xbb\xbf<xml><a>1</a></xml>",
        b"<xml><a>1</a>",
    ],
)
def test_anything_unusual_is_left_to_expat(body: bytes) -> None:
    assert _parse_simple(body) is None
    try:
        decoded: dict[str, str] | str = decode_xml(body)
    except DecodeError:
        decoded = "DecodeError"
    assert decoded == _expat(body)


_PIECES = ["a", "b", "<", ">", "]", "]]>", "&", "&amp;", "\r", "\n", " ", "\t", "\x00", "\x01",
           "é", "中", "😀", "<![CDATA[", "]]", "/", "\ufffe", "&#13;", "x"]  # fmt: skip
_NAMES = ["a", "b", "return_code", "x1", "_n", "a-b", "a.b", "1a", "xml"]


def _random_document(rng: random.Random) -> bytes:
    def text() -> str:
        return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 5)))

    parts = [rng.choice(["<xml>", "<xml>", "<root>", "<xml >", ""])]
    for _ in range(rng.randint(0, 4)):
        name = rng.choice(_NAMES)
        gap = rng.choice(["", "", "\n", " ", "\r\n", "x"])
        style = rng.random()
        if style < 0.4:
            parts.append(f"{gap}<{name}><![CDATA[{text()}]]></{name}>")
        elif style < 0.8:
            parts.append(f"{gap}<{name}>{text()}</{name}>")
        elif style < 0.9:
            parts.append(f"{gap}<{name}/>")
        else:
            parts.append(f"{gap}<{name}>{text()}<![CDATA[{text()}]]>{text()}</{rng.choice(_NAMES)}>")
    parts.append(rng.choice(["</xml>", "</xml>", "</root>", "</xml>\n", "</xm>", ""]))
    document = "".join(parts).encode("utf-8")
    return document + b"\xff" if rng.random() < 0.03 else document


def test_random_documents_agree_with_expat() -> None:
    rng = random.Random(20261122)
    taken = 0
    for _ in range(30_000):
        body = _random_document(rng)
        fast = _parse_simple(body)
        if fast is not None:
            taken += 1
            assert fast == _expat(body), body
    assert taken > 1000  # the generator does exercise the fast path


def test_every_encoded_document_round_trips() -> None:
    rng = random.Random(7)
    alphabet = "ab]>&<\r\n\t 中😀"
    for _ in range(5_000):
        fields = {
            f"f{i}": "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
            for i in range(rng.randint(0, 5))
        }
        assert decode_xml(encode_xml(fields)) == fields


@pytest.mark.parametrize("name", ["a", "_x", "return_code", "A9", "a-b", "a.b", "if", "x_1.y-z"])
def test_encode_accepts_every_valid_element_name(name: str) -> None:
    assert decode_xml(encode_xml({name: "v"})) == {name: "v"}


@pytest.mark.parametrize("name", ["", "1a", "-a", ".a", "a b", "é", "a\n", "a:b", "ａ"])
def test_encode_refuses_invalid_element_names(name: str) -> None:
    with pytest.raises(ValidationError):
        encode_xml({name: "v"})


def _written(encode: Any, fields: dict[Any, Any]) -> Any:
    try:
        return encode(fields)
    except ValidationError as error:
        return ("ValidationError", error.field, error.message)
    except UnicodeEncodeError:
        return "UnicodeEncodeError"


def test_the_encoder_fast_path_writes_what_the_field_by_field_encoder_writes() -> None:
    # encode_xml checks all names and values at once; anything unusual goes field by field. For
    # any fields both must write the same bytes or refuse with the same error.
    from paykit_async.codecs.xml import _encode_each

    rng = random.Random(18)
    names = ["a", "_x", "return_code", "a-b", "a.b", "1a", "a b", "a\n", "é", "", "x_1.y-z"]
    alphabet = [
        "a",
        "]",
        ">",
        "]]>",
        "&",
        "<",
        "\r",
        "\n",
        "\t",
        " ",
        "中",
        "\x00",
        "\x0b",
        "\ufffe",
        "\ud800",
    ]
    for _ in range(20_000):
        fields: dict[Any, Any] = {}
        for _ in range(rng.randint(0, 5)):
            name = rng.choice(names) if rng.random() < 0.3 else f"f{rng.randint(0, 9)}"
            value: Any = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
            if rng.random() < 0.05:
                value = rng.choice([7, None, 1.5])
            fields[name] = value
        assert _written(encode_xml, fields) == _written(lambda f: _encode_each(f, "xml"), fields), fields
