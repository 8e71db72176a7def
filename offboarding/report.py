"""The offboarding report in Markdown: evidence an auditor can file."""

from typing import Any


def _cell(value: Any) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return ["_None._", ""]
    lines = ["| " + " | ".join(title for _key, title in columns) + " |", "|" + "---|" * len(columns)]
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
        f"# Offboarding report: {report['handle']}",
        "",
        f"- **Case:** {report['case']} ({report['status']})",
        f"- **Reason:** {_cell(report['reason'])}",
        f"- **Run by:** {report['started_by']} at {report['started_at']} (effective {report['effective_at']})",
        f"- **Deadline for follow-up steps:** {report['deadline']}",
        f"- **Completed:** {_cell(report['closed_at'])} — time from start to completion: {done}",
        "- **Audit chain head at completion:** "
        + (
            "not yet complete" if report["head_seq"] is None else f"event {report['head_seq']}, `{report['head_hash']}`"
        ),
        f"- **Report generated:** {report['generated_at']}",
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
