"""The flat-XML codec of WeChat Pay v2: exact round trips and refused attacks.

xmltodict (an independent parser) cross-checks what the encoder writes.
"""

from __future__ import annotations

import pytest
import xmltodict

from paykit_async.codecs import decode_xml, encode_xml
from paykit_async.codecs.xml import MAX_XML_BYTES, looks_like_html
from paykit_async.errors import DecodeError, ValidationError

AWKWARD_VALUES = {
    "cdata_end": "a]]>b",
    "cdata_end_twice": "]]>]]>",
    "brackets": "]] ] ]>",
    "markup": "<&>",
    "entity_text": "&amp; &lt; &#13;",
    "chinese": "退款原因：商品缺货",
    "emoji": "红包🧧 ok 😀",
    "spaces": "  leading and trailing  ",
    "crlf": "line one\r\nline two\r\n",
    "lone_cr": "a\rb",
    "newline": "\n",
    "tab": "\tx\t",
    "quotes": "\"'",
    "empty": "",
    "plain": "SUCCESS",
}


def test_awkward_values_round_trip_exactly() -> None:
    assert decode_xml(encode_xml(AWKWARD_VALUES)) == AWKWARD_VALUES


@pytest.mark.parametrize(("name", "value"), AWKWARD_VALUES.items())
def test_each_value_round_trips_alone(name: str, value: str) -> None:
    assert decode_xml(encode_xml({name: value})) == {name: value}


def test_an_independent_parser_reads_the_same_values() -> None:
    parsed = xmltodict.parse(encode_xml(AWKWARD_VALUES), strip_whitespace=False)["xml"]
    assert {name: value or "" for name, value in parsed.items()} == AWKWARD_VALUES


def test_encoder_writes_cdata_for_every_value_and_keeps_field_order() -> None:
    body = encode_xml({"b": "2", "a": "<1>"})
    assert body == b"<xml><b><![CDATA[2]]></b><a><![CDATA[<1>]]></a></xml>"


def test_non_string_values_are_written_with_str() -> None:
    assert decode_xml(encode_xml({"total_fee": 100})) == {"total_fee": "100"}


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a<b", "中文"])
def test_invalid_element_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        encode_xml({name: "x"})


@pytest.mark.parametrize("value", ["\x00", "a\x01b", "\x0b", "\ufffe"])
def test_characters_xml_cannot_carry_are_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        encode_xml({"desc": value})


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><a></a></xml>",
        b"<xml><a/></xml>",
        b"<xml><a><![CDATA[]]></a></xml>",
        b"<xml>\n  <a></a>\n</xml>",
    ],
)
def test_empty_element_is_the_empty_string_never_none(body: bytes) -> None:
    assert decode_xml(body) == {"a": ""}


def test_plain_text_and_character_references_decode() -> None:
    body = b"<xml><a>x &amp; y &#13;&#x4E2D;</a><b> \xe4\xb8\xad </b></xml>"
    assert decode_xml(body) == {"a": "x & y \r中", "b": " 中 "}


def test_xml_declaration_is_accepted() -> None:
    assert decode_xml(b'<?xml version="1.0" encoding="UTF-8"?><xml><a>1</a></xml>') == {"a": "1"}


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<xml><return_code>&lol9;</return_code></xml>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><return_msg>&xxe;</return_msg></xml>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<xml><a>1</a></xml>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd">
<xml><a>1</a></xml>"""

PLAIN_DOCTYPE = b"<!DOCTYPE xml><xml><a>1</a></xml>"


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY, EXTERNAL_DTD, PLAIN_DOCTYPE],
    ids=["billion-laughs", "external-entity", "parameter-entity", "external-dtd", "doctype"],
)
def test_doctype_and_entities_are_refused_before_expansion(body: bytes) -> None:
    with pytest.raises(DecodeError, match="DOCTYPE") as caught:
        decode_xml(body)
    assert caught.value.retryable is False


def test_undeclared_entity_reference_is_refused() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_xml(b"<xml><a>&xxe;</a></xml>")
    assert caught.value.retryable is False


def test_every_truncation_of_a_reply_is_a_retryable_decode_error() -> None:
    body = encode_xml(
        {"return_code": "SUCCESS", "return_msg": "退款😀 ]]> a\r\nb", "refund_fee": "1", "empty": ""}
    )
    for cut in range(len(body)):
        with pytest.raises(DecodeError) as caught:
            decode_xml(body[:cut])
        assert caught.value.retryable is True, (cut, body[:cut])


def test_garbage_after_the_document_is_not_retryable() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_xml(b"<xml><a>1</a></xml><xml>")
    assert caught.value.retryable is False


WECHAT_CERTIFICATE_PAGE = (
    b"<html>\r\n<head><title>400 The SSL certificate error</title></head>\r\n<body>\r\n"
    b"<center><h1>400 Bad Request</h1></center>\r\n"
    b"<center>The SSL certificate error</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@pytest.mark.parametrize(
    "body",
    [
        WECHAT_CERTIFICATE_PAGE,
        b"<!DOCTYPE html><html><body>No required SSL certificate was sent</body></html>",
        b"  \n<HTML><BODY>proxy login</BODY></HTML>",
    ],
)
def test_html_page_is_reported_as_a_certificate_problem(body: bytes) -> None:
    with pytest.raises(DecodeError, match="certificate") as caught:
        decode_xml(body)
    assert caught.value.retryable is False
    # The codec cannot see the HTTP status: only the dialect may call a 4xx page a definite refusal.
    assert caught.value.outcome_unknown is True
    assert looks_like_html(body)


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><a><b>1</b></a></xml>",
        b"<xml><a>1</a><a>2</a></xml>",
        b"<xml>loose text<a>1</a></xml>",
    ],
    ids=["nested", "repeated", "text-under-root"],
)
def test_documents_that_are_not_flat_are_refused(body: bytes) -> None:
    with pytest.raises(DecodeError, match="flat"):
        decode_xml(body)


def test_oversize_document_is_refused_before_parsing() -> None:
    body = b"<xml><a>" + b"x" * MAX_XML_BYTES + b"</a></xml>"
    with pytest.raises(DecodeError, match="larger than"):
        decode_xml(body)
    assert decode_xml(b"<xml><a>12</a></xml>", max_bytes=20) == {"a": "12"}
    with pytest.raises(DecodeError):
        decode_xml(b"<xml><a>123</a></xml>", max_bytes=20)


def test_non_utf8_bytes_are_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_xml(b"<xml><a>\xff\xfe</a></xml>")
