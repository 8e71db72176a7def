"""The offboarding report in Markdown: evidence an auditor can file.

Everything in it that came from people or the database (reasons, notes, names, handles)
is escaped for Markdown: a renderer shows it as the literal text, never as HTML, a link,
an image or emphasis, and no control character reaches the file raw.
"""

import re
from typing import Any

# Backslash-escaped: the ASCII punctuation Markdown (CommonMark, GFM tables) acts on.
_MARKDOWN_PUNCTUATION = frozenset("\\`*_{}[]()#+-.!|~")
# HTML-escaped: a renderer never sees a tag or an entity from data.
_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
# C0/C1 controls, DEL, bidirectional controls and line separators: shown as escapes.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_HEX = re.compile("[0-9a-f]+")


def _control(match: re.Match[str]) -> str:
    char = match.group()
    if char in "\r\n\t":
        return " "  # one line: a cell or a list item never breaks out of its block
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"  # its backslash is escaped below


def markdown_text(value: Any) -> str:
    """``value`` as literal Markdown text on one line (``-`` for nothing)."""
    if value is None or value == "":
        return "-"
    out: list[str] = []
    for char in _CONTROL.sub(_control, str(value)):
        if char in _MARKDOWN_PUNCTUATION:
            out.append("\\" + char)
        else:
            out.append(_HTML.get(char, char))
    return "".join(out)


_cell = markdown_text


def _code(value: Any) -> str:
    """A hash in a code span; anything that is not plain hex is escaped text instead."""
    text = str(value)
    return f"`{text}`" if _HEX.fullmatch(text) else markdown_text(text)


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return ["_None._", ""]
    lines = ["| " + " | ".join(_cell(title) for _key, title in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key, _title in columns) + " |" for row in rows]
    return [*lines, ""]


GRANT_COLUMNS = [
    ("account", "account"),
    ("grant", "grant"),
    ("reason", "granted for"),
    ("granted_by", "granted by"),
    ("from", "from"),
    ("revoked_at", "revoked at"),
    ("revoked_by", "revoked by"),
]
EXPOSURE_COLUMNS = [
    ("account", "account"),
    ("field", "secret"),
    ("since", "exposed since"),
    ("deadline", "deadline"),
    ("rotated_at", "rotated at"),
    ("new_version", "new version"),
]
MANUAL_COLUMNS = [
    ("step", "step"),
    ("title", "task"),
    ("status", "status"),
    ("closed_by", "closed by"),
    ("closed_at", "closed at"),
    ("note", "note"),
]
STEP_COLUMNS = [
    ("step", "step"),
    ("kind", "kind"),
    ("account", "account"),
    ("status", "status"),
    ("closed_by", "closed by"),
    ("closed_at", "closed at"),
]


def render_markdown(report: dict[str, Any]) -> str:
    duration = report["duration_s"]
    done = "not yet complete" if duration is None else f"{duration // 3600} h {duration % 3600 // 60} min"
    lines = [
        f"# Offboarding report: {_cell(report['handle'])}",
        "",
        f"- **Case:** {_cell(report['case'])} ({_cell(report['status'])})",
        f"- **Reason:** {_cell(report['reason'])}",
        f"- **Run by:** {_cell(report['started_by'])} at {_cell(report['started_at'])}"
        f" (effective {_cell(report['effective_at'])})",
        f"- **Deadline for follow-up steps:** {_cell(report['deadline'])}",
        f"- **Completed:** {_cell(report['closed_at'])} — time from start to completion: {done}",
        "- **Audit chain head at completion:** "
        + (
            "not yet complete"
            if report["head_seq"] is None
            else f"event {_cell(report['head_seq'])}, {_code(report['head_hash'])}"
        ),
        f"- **Report generated:** {_cell(report['generated_at'])}",
        "",
        "## Grants revoked",
        "",
        *_table(report["grants_revoked"], GRANT_COLUMNS),
        "## Credentials they could have seen",
        "",
        *_table(report["exposed_credentials"], EXPOSURE_COLUMNS),
        "## Manual platform steps",
        "",
        *_table(report["manual_steps"], MANUAL_COLUMNS),
        "## Every step",
        "",
        *_table(report["steps"], STEP_COLUMNS),
    ]
    return "\n".join(lines).rstrip() + "\n"
