"""The flat-XML parser (WeChat replies, refund notifications, the simulator's requests) under
hostile input: linear time on the worst shapes found, a result or a ``DecodeError`` for any
bytes, and a fast path that never disagrees with expat (issue 12, finding 1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paykit_async import DecodeError, PaykitError, WeChatPayClient
from paykit_async.codecs.xml import MAX_XML_BYTES, _FlatParser, _parse_simple, decode_xml, looks_like_html

from .support import FEW, HOSTILE, WECHAT_APPID, WECHAT_KEY, WECHAT_MCH_ID, fill, growth_ratio, swallow

# Bodies that once made (or could make) a regular-expression or callback parser superlinear.
WORST_SHAPES = {
    "unclosed_cdata_openers": lambda n: fill(b"<xml>", b"<a><![CDATA[", b"</xml>", n),
    "cdata_of_brackets": lambda n: fill(b"<xml><a><![CDATA[", b"]", b"</a></xml>", n),
    "cdata_of_double_brackets": lambda n: fill(b"<xml><a><![CDATA[", b"]]", b"</a></xml>", n),
    "unclosed_cdata_text": lambda n: fill(b"<xml><a><![CDATA[", b"x", b"</xml>", n),
    "cdata_closed_then_wrong_tag": lambda n: fill(b"<xml>", b"<a><![CDATA[x]]></b>", b"</xml>", n),
    "plain_text_wrong_close": lambda n: fill(b"<xml><a>", b"x", b"</b></xml>", n),
    "open_tags": lambda n: fill(b"<xml>", b"<a>", b"</xml>", n),
    "whitespace": lambda n: fill(b"<xml>", b" \n\t", b"</xml>", n),
    "character_references": lambda n: fill(b"<xml><a>", b"&#x41;", b"</a></xml>", n),
    "many_distinct_elements": lambda n: (
        b"<xml>" + b"".join(b"<e%d>v</e%d>" % (i, i) for i in range(n // 16)) + b"</xml>"
    ),
    "long_element_name": lambda n: fill(b"<xml><", b"a", b">1</a></xml>", n),
    "attributes": lambda n: fill(b"<xml><a ", b'b="1" ', b">1</a></xml>", n),
    "html_inside_cdata": lambda n: fill(b"<xml><a><![CDATA[", b"<html", b"]]></a></xml>", n),
    # The fast path reads every position once it has seen something it cannot read (findall).
    "less_than_signs": lambda n: fill(b"<xml>", b"<", b"</xml>", n),
    "cdata_brackets_and_less_than": lambda n: fill(b"<xml><a><![CDATA[", b"]<]", b"]]></a></xml>", n),
    "elements_after_garbage": lambda n: fill(b"<xml>x", b"<a><![CDATA[1]]></a>", b"</xml>", n),
    "end_tags_only": lambda n: fill(b"<xml>", b"</a>", b"</xml>", n),
}

SIZE = MAX_XML_BYTES  # the doubling test never goes past the cap


def _client() -> WeChatPayClient:
    return WeChatPayClient(WECHAT_APPID, WECHAT_MCH_ID, WECHAT_KEY, base_url="http://127.0.0.1:9")


def test_the_issue_reproducer_is_refused() -> None:
    # Took seconds before the fix (252 KB took 56 s, blocking the event loop).
    body = b"<xml>" + b"<a><![CDATA[" * 8000 + b"</xml>"
    with pytest.raises(DecodeError):
        _client().parse_refund_notification(body)


def test_the_reproducer_at_the_size_cap_is_refused() -> None:
    body = fill(b"<xml>", b"<a><![CDATA[", b"</xml>", MAX_XML_BYTES)
    assert len(body) <= MAX_XML_BYTES
    with pytest.raises(DecodeError):
        decode_xml(body)


@pytest.mark.parametrize("shape", sorted(WORST_SHAPES))
def test_decode_xml_time_grows_linearly(shape: str) -> None:
    ratio = growth_ratio(swallow(decode_xml, DecodeError), WORST_SHAPES[shape], SIZE)
    assert ratio < 3.0, f"{shape}: doubling the body multiplied the time by {ratio:.2f}"


def test_notification_parsing_time_grows_linearly() -> None:
    client = _client()
    run = swallow(client.parse_refund_notification, PaykitError)
    assert growth_ratio(run, WORST_SHAPES["unclosed_cdata_openers"], SIZE) < 3.0


# Tokens that exercise every branch of the fast path and of expat: CDATA edges, references,
# declarations, comments, control characters, HTML, nesting, repetition.
_TOKENS = st.sampled_from(
    [
        "<a>",
        "</a>",
        "<b>",
        "</b>",
        "<a_1>",
        "</a_1>",
        "<![CDATA[",
        "]]>",
        "]",
        "]]",
        "&amp;",
        "&",
        "&#13;",
        "&lol;",
        "\r",
        "\n",
        " ",
        "x",
        "中",
        "<!DOCTYPE xml>",
        "<!--",
        "-->",
        "<?xml version='1.0'?>",
        "<html>",
        "<a/>",
        "<",
        ">",
        "\x00",
        "\x01",
        "\ufffe",
    ]
)
_FRAGMENTS = st.lists(_TOKENS, max_size=30).map("".join)
_DOCUMENTS = st.one_of(
    _FRAGMENTS.map(lambda text: f"<xml>{text}</xml>".encode("utf-8", "surrogatepass")),
    _FRAGMENTS.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.builds(
        lambda prefix, body: prefix + f"<xml>{body}</xml>".encode(),
        st.sampled_from([b"", b"\xef\xbb\xbf", b"<?xml version='1.0' encoding='utf-8'?>", b"\xff"]),
        _FRAGMENTS,
    ),
)


def _expat(body: bytes) -> dict[str, str] | None:
    try:
        return _FlatParser().parse(body)
    except DecodeError:
        return None


def _assert_fields_or_decode_error(body: bytes) -> None:
    try:
        fields = decode_xml(body)
    except DecodeError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


@HOSTILE
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_fields_or_a_decode_error(body: bytes) -> None:
    _assert_fields_or_decode_error(body)


@HOSTILE
@given(_DOCUMENTS)
def test_structured_documents_give_fields_or_a_decode_error(body: bytes) -> None:
    _assert_fields_or_decode_error(body)


@HOSTILE
@given(_DOCUMENTS)
def test_the_fast_path_only_ever_returns_what_expat_returns(body: bytes) -> None:
    fast = _parse_simple(body)
    if fast is not None:
        assert fast == _expat(body)


@HOSTILE
@given(st.one_of(_DOCUMENTS, st.binary(max_size=600).map(lambda tail: b"<xml>" + tail)))
def test_a_body_opening_with_the_xml_root_is_never_html(body: bytes) -> None:
    # decode_xml skips looks_like_html for these; an <html> page (any other opening) is still
    # refused as one (tests/foundation/test_xml_codec.py).
    if body.startswith(b"<xml>"):
        assert not looks_like_html(body)


@FEW
@given(st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), st.text(max_size=30), max_size=8))
def test_notification_envelopes_give_a_notification_or_a_paykit_error(fields: dict[str, str]) -> None:
    body = ("<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>").encode(
        "utf-8", "surrogatepass"
    )
    with pytest.raises(PaykitError):
        # No req_info encrypted under the key can come out of this strategy.
        _client().parse_refund_notification(body)


@pytest.mark.parametrize("name", ["a\nb", "a\n", "\na"])
def test_a_name_holding_a_newline_is_no_valid_element_name(name: str) -> None:
    # The writer checks all names at once joined by newlines: one inside a name must not pass.
    from paykit_async import ValidationError
    from paykit_async.codecs.xml import encode_xml

    with pytest.raises(ValidationError):
        encode_xml({"appid": "wx1", name: "v"})
