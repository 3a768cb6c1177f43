"""Body codecs: form (PAYJS), flat XML (WeChat Pay v2) and Decimal-safe JSON (eftPay, PAYJS replies)."""

from .form import decode_form, encode_form
from .json import decode_json, encode_json
from .xml import decode_xml, encode_xml

__all__ = ["decode_form", "decode_json", "decode_xml", "encode_form", "encode_json", "encode_xml"]
