"""The documentation stays true: every command has help and a docs page; exit codes match."""

import re
from pathlib import Path

import pytest
from typer.main import get_command

from govern.cli.app import app
from govern.errors import EXIT_CODE_MEANINGS, ExitCode

ROOT = Path(__file__).parent.parent
DOCS = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").rglob("*.md"))


def command_paths() -> list[tuple[str, str | None]]:
    root = get_command(app)
    out: list[tuple[str, str | None]] = []

    def walk(command: object, path: list[str]) -> None:
        commands = getattr(command, "commands", None)
        if commands:
            for name, sub in commands.items():
                walk(sub, [*path, name])
        else:
            out.append((" ".join(path), getattr(command, "help", None)))

    walk(root, [])
    return out


@pytest.mark.parametrize(("path", "help_text"), command_paths(), ids=str)
def test_every_command_has_help_and_is_documented(path: str, help_text: str | None) -> None:
    assert help_text, f"govern {path} has no help text"
    assert f"govern {path}" in DOCS, f"govern {path} is not documented under docs/"


def test_exit_code_table_matches_the_code() -> None:
    text = (ROOT / "docs" / "exit-codes.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", text, flags=re.MULTILINE))
    assert {int(k): v for k, v in rows.items()} == {int(k): v for k, v in EXIT_CODE_MEANINGS.items()}
    assert set(EXIT_CODE_MEANINGS) == set(ExitCode)


def test_readme_quick_start_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme
    assert "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_changelog_has_a_security_section() -> None:
    assert "### Security" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_security_doc_rule_table_matches_the_code() -> None:
    from audit.state import rule_table_markdown

    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    start = text.index("<!-- rule-table: generated from audit.state.rule_table_markdown() -->\n")
    end = text.index("<!-- /rule-table -->")
    assert text[start:end].split("\n", 1)[1] == rule_table_markdown()
