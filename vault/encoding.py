"""Unambiguous encodings used as associated data and signature input."""

import struct

_DOMAIN = b"govern/v1"


def aad(*parts: str | int | bytes) -> bytes:
    """Encode ``parts`` as length-prefixed fields after a domain tag.

    Length prefixes make the encoding injective: ``("ab", "c")`` and
    ``("a", "bc")`` give different bytes, so no two bindings collide.
    """
    out = bytearray(_DOMAIN)
    for part in parts:
        if isinstance(part, bool):
            raise TypeError("booleans are not valid associated data")
        if isinstance(part, int):
            raw = str(part).encode("ascii")
            tag = b"i"
        elif isinstance(part, str):
            raw = part.encode("utf-8")
            tag = b"s"
        else:
            raw = bytes(part)
            tag = b"b"
        out += tag + struct.pack(">I", len(raw)) + raw
    return bytes(out)
