"""Text a person typed or a file supplied, made safe to show: shown as text, never interpreted.

Everything the CLI prints for people goes through :func:`visible` (errors, notices,
warnings, records, table cells, policy text), tables reach rich only as
:class:`rich.text.Text` (no markup, no links, no styles from data), and JSON output is
exact data with every character a terminal could act on written as a ``\\uXXXX`` escape.
Reports have their own escaping (Markdown in ``offboarding.report``, HTML by Jinja2).
"""

import re
from typing import Any

# Bidirectional embeddings, overrides and isolates, the marks, and the line/paragraph
# separators: they reorder or break what is shown without being seen.
_INVISIBLE_FORMAT = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
# C0 controls, DEL, C1 controls, and the format characters above.
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_INVISIBLE_FORMAT}]")
_UNSAFE_KEEP_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE_FORMAT}]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# What json.dumps(ensure_ascii=False) leaves raw although a terminal may act on it.
_JSON_RAW_UNSAFE = re.compile(f"[\x7f-\x9f{_INVISIBLE_FORMAT}]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object, *, keep_newlines: bool = False) -> str:
    """``value`` as text with every control character made visible (``\\x1b``, ``\\u202e``).

    C0 and C1 controls, DEL, bidirectional overrides and isolates are written as escapes,
    so nothing reaches the terminal that it would act on. With ``keep_newlines`` (a
    multi-line text legitimately printed as such, like policy text) newlines and tabs stay.
    """
    text = value if isinstance(value, str) else str(value)
    return (_UNSAFE_KEEP_LINES if keep_newlines else _UNSAFE).sub(_escape, text)


def json_safe(encoded: str) -> str:
    """JSON text from ``json.dumps(..., ensure_ascii=False)`` with DEL, C1 controls and
    bidirectional controls written as ``\\uXXXX`` escapes: the same data, nothing raw.

    (json.dumps already escapes C0 controls; in its output these characters can only
    occur inside string literals, where the escape means the same character.)
    """
    return _JSON_RAW_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded)


def scalar(value: Any) -> str:
    """One value as words for people: ``-`` for nothing, ``yes``/``no`` for booleans."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
