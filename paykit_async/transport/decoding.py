"""Reading a reply body within a byte cap, decompressing it ourselves as it streams.

Both transports ask for ``Accept-Encoding: identity`` and read the *raw* body. Should a server
compress anyway, gzip and deflate are inflated here with ``max_length`` bounded by the room left
under the cap, so a small compressed reply that expands to a gigabyte (a decompression bomb)
is refused after at most ``cap + 1`` decoded bytes — memory stays within the cap plus one
network chunk. Other encodings are refused: we never asked for them.
"""

from __future__ import annotations

import zlib

from ..errors import TransportError

__all__ = ["ACCEPT_ENCODING", "CappedBody"]

#: The ``Accept-Encoding`` every transport sends: replies are a few kilobytes, compression buys
#: nothing and only opens the door to decompression bombs.
ACCEPT_ENCODING = "identity"

_GZIP_OR_ZLIB = zlib.MAX_WBITS | 32  # zlib detects a gzip or zlib header itself


class CappedBody:
    """Collects a reply body of at most ``limit`` decoded bytes, undoing ``content_encoding``.

    Feed raw network chunks to :meth:`feed`, then call :meth:`finish`. Both raise
    :class:`TransportError` (``sent=True``: the provider answered) once the decoded body passes
    ``limit`` or when the encoding is unsupported or corrupt.
    """

    __slots__ = ("_chunks", "_decoder", "_encoding", "_limit", "_size")

    def __init__(self, limit: int, content_encoding: str | None = None) -> None:
        self._limit = limit
        self._size = 0
        self._chunks: list[bytes] = []
        encoding = (content_encoding or "").strip().lower()
        if encoding in ("", "identity"):
            self._decoder = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self._decoder = zlib.decompressobj(_GZIP_OR_ZLIB)
        else:
            raise TransportError(
                f"the reply uses content-encoding {encoding[:40]!r}, which was not asked for "
                "(paykit asks for identity)",
                sent=True,
            )
        self._encoding = encoding

    def feed(self, chunk: bytes) -> None:
        """Add one raw chunk; raises once the decoded body is larger than the limit."""
        if self._decoder is None:
            self._add(chunk)
            return
        data = chunk
        while data:
            decoder = self._decoder
            try:
                # Never more than one byte past the room left: enough to see the cap is exceeded.
                self._add(decoder.decompress(data, self._limit - self._size + 1))
            except zlib.error as exc:
                data = self._retry_raw_deflate(chunk, exc)
                continue
            data = decoder.unconsumed_tail

    def finish(self) -> bytes:
        """The whole decoded body."""
        if self._decoder is not None:
            try:
                self._add(self._decoder.flush())
            except zlib.error as exc:
                raise TransportError(f"the {self._encoding} reply is corrupt: {exc}", sent=True) from None
        return b"".join(self._chunks)

    def _retry_raw_deflate(self, chunk: bytes, exc: zlib.error) -> bytes:
        # Some servers send "deflate" without the zlib header: start over as raw deflate, once.
        if self._encoding == "deflate" and self._size == 0 and not self._chunks:
            self._encoding = "deflate (raw)"
            self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            return chunk
        raise TransportError(f"the {self._encoding} reply is corrupt: {exc}", sent=True) from None

    def _add(self, data: bytes) -> None:
        if not data:
            return
        self._size += len(data)
        if self._size > self._limit:
            raise TransportError(f"reply larger than {self._limit} bytes refused", sent=True)
        self._chunks.append(data)
