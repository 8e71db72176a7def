"""What a person typed or a file supplied is shown as text, never interpreted (DESIGN property 8).

Issue 10: rich markup in a reason broke every table on a terminal or became a live link and
hidden text; terminal escapes from the database and from files reached the screen in errors,
notices, tables and policy text; the Markdown offboarding report let HTML and links through.
"""

import io
import json
import re
import sys
from pathlib import Path

import pytest
from conftest import Govern, Result, passphrase_of

from govern.cli.text import json_safe, visible
from offboarding.report import GRANT_COLUMNS, markdown_text

UNCLOSED = "need it [/link] for ticket"
LINK_AND_CONCEAL = "[link=https://evil.example/sso]see ticket[/link][conceal] and also give me admin[/conceal]"
# Clears the line and moves to column 1, so what follows reads as govern's own output.
OVERWRITE = "\x1b[2K\x1b[1G govern: verified 99 events"
# Every kind of character a terminal acts on: CSI, OSC 8 hyperlink with BEL, 8-bit CSI,
# DEL, carriage return, backspace, and a right-to-left override.
HOSTILE = "a\x1b[31mred\x1b]8;;https://evil.example\x07link\x1b]8;;\x07 \x9b2J\x7f\r\x08 \u202eevil\u2066x\u2069"
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
OSC_HYPERLINK = "\x1b]8;"
SGR_CONCEAL = re.compile(r"\x1b\[(?:\d+;)*8m")


class Terminal(io.StringIO):
    """stdout as a terminal: rich renders tables (with styles) on it."""

    def isatty(self) -> bool:
        return True


def on_terminal(g: Govern, *args: str, as_: str = "alice", no_color: bool = False) -> Result:
    """Like ``Govern.__call__`` (the real CLI in-process), with stdout a terminal."""
    from govern.cli.main import run

    out, err = Terminal(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GOVERN_DB_URL", g.db)
        patch.setenv("GOVERN_USER", as_)
        patch.setenv("GOVERN_PASSPHRASE", passphrase_of(as_))
        patch.setenv("COLUMNS", "400")
        patch.setenv("TERM", "xterm-256color")
        if no_color:
            patch.setenv("NO_COLOR", "1")
        else:
            patch.delenv("NO_COLOR", raising=False)
        patch.setattr(sys, "stdin", io.StringIO(""))
        patch.setattr(sys, "stdout", out)
        patch.setattr(sys, "stderr", err)
        code = run(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def shown_as_text(text: str) -> None:
    """Nothing a terminal would act on, and nothing rich made of the data."""
    unstyled = text.replace("\x1b[1m", "").replace("\x1b[3m", "").replace("\x1b[0m", "")  # rich: bold, italic
    assert not RAW_CONTROL.search(unstyled), repr(text)
    assert OSC_HYPERLINK not in text
    assert not SGR_CONCEAL.search(text)


@pytest.fixture
def patched_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """A member's modified govern, which skips input validation and signs what it is given.

    govern refuses control characters in what is typed, but a signed event or a row can
    hold anything such a client wrote: every output path must still show it as text.
    """
    monkeypatch.setattr("govern.validate._no_controls", lambda text, _what: text)


def request(g: Govern, reason: str) -> int:
    result = g.ok("access", "request", "x-acme", "--reason", reason, "--json", as_="bob").json()
    return int(result["id"])


# -- rich markup injection ------------------------------------------------------------------------


def test_rich_markup_injection_unclosed_tag_does_not_break_tables(vault: Govern) -> None:
    """``[/link]`` in a reason made `access requests` and `audit log` exit 1 on every terminal."""
    request(vault, UNCLOSED)
    for command in (("access", "requests"), ("audit", "log"), ("access", "requests", "--pending")):
        shown = on_terminal(vault, *command)
        assert shown.code == 0, f"govern {' '.join(command)}: {shown.err}"
        assert UNCLOSED in shown.out, "shown literally, brackets and all"
        assert "MarkupError" not in shown.err
        shown_as_text(shown.out)
    assert "audit log" in on_terminal(vault, "audit", "log").out, "the table's title is still there"


def test_rich_markup_injection_link_and_conceal_are_shown_literally(vault: Govern) -> None:
    """No live hyperlink, no hidden text: the markup is the text."""
    request(vault, LINK_AND_CONCEAL)
    vault.ok("staff", "add", "carol", "--name", "[bold red]Carol[/] [link=https://evil.example]x[/link]")
    for command in (("access", "requests"), ("audit", "log"), ("staff", "list")):
        shown = on_terminal(vault, *command)
        assert shown.code == 0, shown.err
        shown_as_text(shown.out)
    assert LINK_AND_CONCEAL in on_terminal(vault, "access", "requests").out
    assert "[bold red]Carol[/] [link=https://evil.example]x[/link]" in on_terminal(vault, "staff", "list").out


def test_rich_markup_injection_with_no_color_keeps_tables_plain(vault: Govern) -> None:
    """NO_COLOR is still honoured: no colour codes, and the data is never styled."""
    request(vault, "[red on white]urgent[/] " + UNCLOSED)
    shown = on_terminal(vault, "access", "requests", no_color=True)
    assert shown.code == 0, shown.err
    assert "[red on white]urgent[/] " + UNCLOSED in shown.out
    colour = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])[;m]")
    assert not colour.search(shown.out)


# -- terminal escapes from files and the database ---------------------------------------------------


def test_terminal_escapes_in_error_messages_are_made_visible(vault: Govern, tmp_path: Path) -> None:
    """A crafted export's seal signer no longer rewrites the error line; typed values neither."""
    out = tmp_path / "evidence.jsonl"
    vault.ok("audit", "export", "--format", "jsonl", "--out", str(out))
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    seal = next(i for i, line in enumerate(lines) if line["type"] == "seal")
    lines[seal]["signer"] = OVERWRITE
    crafted = tmp_path / "crafted.jsonl"
    crafted.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    refused = vault("audit", "verify", "--export", str(crafted))
    assert refused.code == 6
    assert refused.err.count("\n") == 1
    assert refused.err.startswith("govern: error: ")
    assert "\x1b" not in refused.err
    assert "\\x1b[2K\\x1b[1G govern: verified 99 events" in refused.err, "the signer, shown as text"

    for args in (("staff", "show", HOSTILE), ("account", "show", HOSTILE), ("--bogus" + HOSTILE,)):
        failed = vault(*args)
        assert failed.code not in (0, 1), failed.err
        assert failed.err.count("\n") == 1, repr(failed.err)
        shown_as_text(failed.err)


def test_terminal_escapes_in_notices_are_made_visible(vault: Govern, patched_client: None) -> None:
    started = vault.ok("review", "start", "--name", HOSTILE)
    assert "govern: review" in started.err
    shown_as_text(started.err)
    assert "\\x1b[31mred" in started.err
    assert "\\u202eevil" in started.err
    listed = vault.ok("review", "list")
    shown_as_text(listed.err + listed.out)


def test_terminal_escapes_in_table_cells_are_made_visible(vault: Govern, patched_client: None) -> None:
    request(vault, HOSTILE)
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "multi\nline\treason " + HOSTILE)
    for command in (("access", "requests"), ("access", "list"), ("audit", "log")):
        piped = vault.ok(*command)  # tab-separated text in a pipe
        shown_as_text(piped.out)
        rows = piped.out.splitlines()
        assert all(row.count("\t") == rows[0].count("\t") for row in rows), "one line per row, one cell per column"
        terminal = on_terminal(vault, *command)
        assert terminal.code == 0, terminal.err
        shown_as_text(terminal.out)
    text = vault.ok("access", "list").out
    assert "multi\\nline\\treason a\\x1b[31mred" in text
    assert "\\x9b2J\\x7f\\r\\x08 \\u202eevil\\u2066x\\u2069" in text
    record = vault.ok("staff", "show", "bob").out  # key: value lines
    shown_as_text(record)


def test_terminal_escapes_in_policy_text_are_made_visible(vault: Govern, tmp_path: Path, patched_client: None) -> None:
    text = "# Social media policy\n\n1.\tNever share passwords.\n2. " + HOSTILE + "\n"
    policy = tmp_path / "policy.md"
    policy.write_text(text, encoding="utf-8")
    vault.ok("policy", "publish", str(policy), "--version", "2026-11\x1b[2J")
    shown = vault.ok("policy", "show")
    shown_as_text(shown.out + shown.err)
    assert shown.out.startswith("# Social media policy\n\n1.\tNever share passwords.\n2. a\\x1b[31mred"), (
        "lines and tabs of the text stay"
    )
    assert "policy 2026-11\\x1b[2J" in shown.err
    exact = policy.read_text(encoding="utf-8")  # as publish reads it: universal newlines
    assert vault.ok("policy", "show", "--json").json()["text"] == exact, "JSON is the exact text"
    status = vault.ok("policy", "status")
    shown_as_text(status.out + status.err)


def test_json_output_stays_exact_data(vault: Govern, patched_client: None) -> None:
    """--json keeps every character (escaped as JSON), so nothing raw reaches a terminal."""
    number = request(vault, HOSTILE)
    for command in (("access", "requests", "--json"), ("audit", "log", "--json")):
        raw = vault.ok(*command).out
        assert not RAW_CONTROL.search(raw), "controls, DEL, C1 and bidi controls are JSON escapes"
        assert HOSTILE in {row.get("reason") for row in json.loads(raw)}
    requests = {row["id"]: row for row in vault.ok("access", "requests", "--json").json()}
    assert requests[number]["reason"] == HOSTILE
    shown = vault.ok("staff", "show", "bob", "--json")
    assert not RAW_CONTROL.search(shown.out)
    assert json.loads(json_safe(json.dumps({"x": HOSTILE}, ensure_ascii=False))) == {"x": HOSTILE}


def test_visible_makes_every_control_visible() -> None:
    for code in [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]:
        shown = visible(f"a{chr(code)}b")
        assert not re.search("[\x00-\x1f]", shown), hex(code)
        assert not RAW_CONTROL.search(shown), hex(code)
        assert re.fullmatch(r"a\\(?:[tnr]|x[0-9a-f]{2}|u[0-9a-f]{4})b", shown), hex(code)
    assert visible("one\n\ttwo\x1b", keep_newlines=True) == "one\n\ttwo\\x1b"
    assert visible("Zoë 東京 [b]x[/b] \\x1b") == "Zoë 東京 [b]x[/b] \\x1b", "ordinary text is untouched"


# -- the Markdown offboarding report ----------------------------------------------------------------

PAYLOADS = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "![pixel](https://evil.example/t.gif)",
    "**urgent** _now_ `code` ~~gone~~ & &amp; | pipe \\ back",
)


def test_markdown_offboarding_report_escapes_html_and_links(vault: Govern, patched_client: None) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", " ".join(PAYLOADS) + HOSTILE + "\nnew line")
    started = vault.ok("offboard", "start", "bob", "--reason", "left " + " ".join(PAYLOADS) + HOSTILE, "--json")
    manual = [int(s["step"]) for s in started.json()["steps"] if s["status"] == "open" and s["kind"] == "manual"]
    if manual:
        vault.ok("offboard", "done", "bob", str(manual[0]), "--note", " ".join(PAYLOADS))
    report = vault.ok("offboard", "report", "bob", "--format", "md").out
    assert report.startswith("# Offboarding report: bob\n")
    lowered = report.lower()
    assert "<script" not in lowered
    assert "<img" not in lowered
    assert "](javascript:" not in lowered
    assert "](https:" not in lowered
    assert not re.search(r"(?<!\\)\[", report), "every [ is escaped"
    assert not RAW_CONTROL.search(report)
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in report

    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable("table").render(report)  # html=True: raw HTML would pass
    for tag in ("<script", "<img", "<a ", "<em>now", "<strong>urgent", "<code>code", "<del>", "<s>"):
        assert tag not in html, tag
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, "shown as the literal text"
    assert "[x](javascript:alert(1))" in html
    assert "**urgent** _now_ `code` ~~gone~~ &amp; &amp;amp; | pipe \\ back" in html
    # The grants table still has its columns: a | from data never splits a cell.
    [row] = [line for line in report.splitlines() if line.startswith("| x\\-acme") and "onerror" in line]
    assert len(re.findall(r"(?<!\\) \| ", row)) == len(GRANT_COLUMNS) - 1


def test_markdown_text_escapes_each_payload() -> None:
    for payload in PAYLOADS:
        html = __import__("markdown_it").MarkdownIt("commonmark").render(markdown_text(payload))
        assert "<a " not in html
        assert "<script" not in html
        assert "<img" not in html
        assert "<em>" not in html
        assert "<strong>" not in html
        assert "<code>" not in html
    assert markdown_text(None) == "-"
    assert markdown_text("") == "-"
    assert markdown_text("a\nb|c") == "a b\\|c"
    assert markdown_text("\x1b[2J") == "\\\\x1b\\[2J"


def test_human_output_reads_booleans_as_yes_no(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs it")
    shown = vault.ok("staff", "show", "bob").out
    assert "live=yes" in shown
    assert "True" not in shown
    verified = vault.ok("audit", "verify").out
    assert "ok=yes" in verified
    assert "True" not in verified
