"""``govern import``: every format's sample (tests/data/import, shaped like the real exporters'
output) through the installed entry point on both backends; bad input, attacks, interruption.

Every sample plants canary passwords (``CANARY-…``) and old ones in password history
(``OLDCANARY-…``): no output, log or database byte may show them, and a history
password must never become the current one.
"""

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_KDF, Govern, passphrase_of
from sqlhelp import count, sql

GOVERN = Path(sys.executable).with_name("govern")
DATA = Path(__file__).parent / "data" / "import"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

# sample file -> (format, tag of its canaries, {account: (platform, has TOTP)}, entries skipped by default)
SAMPLES: dict[str, tuple[str, str, dict[str, tuple[str, bool]], int]] = {
    "bitwarden.json": (
        "bitwarden-json",
        "bwjson",
        {"x-acme-social": ("x", True), "ig-acme-insta": ("instagram", True)},
        2,
    ),
    "bitwarden-org.json": (
        "bitwarden-json",
        "bworg",
        {"x-acme-news": ("x", True), "li-linkedin-page": ("linkedin", False)},
        0,
    ),
    "bitwarden.csv": ("bitwarden-csv", "bwcsv", {"x-acme-social": ("x", True), "tt-acme-tok": ("tiktok", False)}, 2),
    "1password.1pux": (
        "1password-1pux",
        "1pux",
        {"x-acme-social": ("x", True), "fb-facebook": ("facebook", True)},
        2,
    ),
    "1password.csv": (
        "1password-csv",
        "1pcsv",
        {"x-acme-social": ("x", True), "yt-youtube": ("youtube", False)},
        2,
    ),
    "keepassxc.csv": (
        "keepassxc-csv",
        "kxcsv",
        {"x-acme-social": ("x", True), "ig-acme-insta": ("instagram", False)},
        1,
    ),
    "keepass.xml": (
        "keepass-xml",
        "kpxml",
        {"x-acme-social": ("x", True), "ig-acme-insta": ("instagram", True)},
        1,
    ),
    "lastpass.csv": ("lastpass-csv", "lpcsv", {"x-acme-social": ("x", True), "fb-facebook": ("facebook", False)}, 1),
    "chrome.csv": ("chrome-csv", "chrome", {"x-acme-social": ("x", False), "li-linkedin-com": ("linkedin", False)}, 1),
    "generic.csv": ("csv", "generic", {"x-acme": ("x", True), "tt-acme": ("tiktok", False)}, 0),
}


class Shell:
    """The installed ``govern`` in a subprocess, with a fast KDF and a file keyring."""

    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.db_url = db_url
        if db_url.startswith("sqlite:///"):  # an explicit --db needs its folder (or init --parents)
            Path(db_url.removeprefix("sqlite:///")).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path / "home"),
            "GOVERN_HOME": str(tmp_path / "govern-home"),
            "GOVERN_DB_URL": db_url,
            "GOVERN_KDF": FAST_KDF,
            "PYTHONPATH": os.environ["PYTHONPATH"],
            "PYTHON_KEYRING_BACKEND": "memkeyring.FileKeyring",
            "GOVERN_TEST_KEYRING_FILE": str(tmp_path / "keyring.json"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.outputs: list[str] = []

    def environment(self, who: str) -> dict[str, str]:
        return {**self.env, "GOVERN_USER": who, "GOVERN_PASSPHRASE": passphrase_of(who)}

    def run(self, *args: str, who: str = "alice", code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(GOVERN), *args], capture_output=True, text=True, env=self.environment(who), timeout=300, check=False
        )
        self.outputs += [result.stdout, result.stderr]
        assert result.returncode == code, f"govern {' '.join(args)} -> {result.returncode}: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result

    def json(self, *args: str, who: str = "alice") -> Any:
        return json.loads(self.run(*args, "--json", who=who).stdout)


@pytest.fixture
def shell(db_url: str, tmp_path: Path) -> Shell:
    sh = Shell(db_url, tmp_path)
    sh.run("init", "--org", "Acme", "--admin", "alice", "--name", "Alice", "--recovery-file", str(tmp_path / "rk"))
    return sh


def _no_canary(texts: list[str]) -> None:
    for text in texts:
        assert "CANARY-" not in text


def _sqlite_bytes(db_url: str) -> bytes:
    base = Path(db_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in base.parent.glob(base.name + "*"))


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_each_sample_imports_sealed_and_leaks_nothing(shell: Shell, sample: str) -> None:
    fmt, tag, accounts, skipped = SAMPLES[sample]
    path = str(DATA / sample)
    dry_run = shell.run("import", path, "--from", fmt, "--json")
    dry = json.loads(dry_run.stdout)
    assert dry["applied"] is False
    planned = {i["account"]: i for i in dry["items"] if i["action"] == "create"}
    assert {a: (i["platform"], i["totp"]) for a, i in planned.items()} == accounts
    assert sum(1 for i in dry["items"] if i["action"] == "skip") == skipped
    assert shell.json("account", "list") == []  # a dry run writes nothing

    done = shell.run("import", path, "--from", fmt, "--apply", "--json")
    summary = json.loads(done.stdout)
    assert summary["created"] == len(accounts)
    assert summary["skipped"] == skipped
    assert "in the clear" in done.stderr
    assert sorted(a["account"] for a in shell.json("account", "list")) == sorted(accounts)

    first = min(accounts)
    platform_prefix = first.split("-")[0]
    # The current password, never one from the entry's history.
    shown = shell.run("secret", "show", first).stdout.strip()
    assert shown.startswith(f"CANARY-{tag}-{platform_prefix}-")
    with_totp = sorted(a for a, (_p, has_totp) in accounts.items() if has_totp)
    if with_totp:
        uri = shell.run("secret", "show", with_totp[0], "--field", "totp-uri").stdout.strip()
        assert f"secret={SEED}" in uri
    events = shell.json("audit", "log")
    sets = [e for e in events if e["action"] == "secret.set"]
    assert len(sets) == len(accounts)
    assert {e["account"]: "totp-uri" in e["data"]["fields"] for e in sets} == {a: t for a, (_p, t) in accounts.items()}
    digest = summary["sha256"]
    for event in sets:
        assert event["data"]["import"]["format"] == fmt
        assert event["data"]["import"]["sha256"] == digest
    completed = [e for e in events if e["action"] == "import.completed"]
    assert completed[-1]["data"]["sha256"] == digest
    shell.run("audit", "verify")

    _no_canary([dry_run.stdout, dry_run.stderr, done.stdout, done.stderr, json.dumps(events)])
    if shell.db_url.startswith("sqlite"):
        raw = _sqlite_bytes(shell.db_url)
        assert b"CANARY-" not in raw
        assert SEED.encode() not in raw
    else:
        dumped = json.dumps([list(map(str, r)) for r in sql(shell.db_url, "SELECT * FROM sealed_field")])
        assert "CANARY-" not in dumped


def test_history_password_never_becomes_current(shell: Shell) -> None:
    for sample in ("bitwarden.json", "keepass.xml", "1password.1pux"):
        fmt, tag, _accounts, _skipped = SAMPLES[sample]
        shell.run("import", str(DATA / sample), "--from", fmt, "--apply", "--update")
        assert shell.run("secret", "show", "x-acme-social").stdout.strip() == f"CANARY-{tag}-x-Q7v!k2"
        for version in shell.json("secret", "history", "x-acme-social"):
            value = shell.run("secret", "show", "x-acme-social", "--version", str(version["version"]))
            assert "OLDCANARY" not in value.stdout


def test_update_adds_a_version_and_rerun_changes_nothing(shell: Shell) -> None:
    path = str(DATA / "chrome.csv")
    shell.run("import", path, "--from", "chrome-csv", "--apply")
    again = shell.json("import", path, "--from", "chrome-csv")
    assert {i["why"] for i in again["items"] if i["account"]} == {"exists (--update adds a version)"}
    other = str(DATA / "1password.csv")
    updated = json.loads(shell.run("import", other, "--from", "1password-csv", "--apply", "--update", "--json").stdout)
    assert updated["updated"] == 1  # x-acme-social: new version from 1Password
    assert updated["created"] == 1  # yt-acme-video
    assert [v["version"] for v in shell.json("secret", "history", "x-acme-social")] == [1, 2]
    rerun = json.loads(shell.run("import", other, "--from", "1password-csv", "--apply", "--update", "--json").stdout)
    assert rerun["unchanged"] == 2
    assert rerun["updated"] == 0
    assert [v["version"] for v in shell.json("secret", "history", "x-acme-social")] == [1, 2]


def test_interrupted_import_reruns_without_duplicates(shell: Shell, tmp_path: Path) -> None:
    """A real SIGKILL of the importing process half-way; the re-run completes the rest."""
    lines = ["account,platform,handle,username,password"]
    lines += [f"x-bulk-{n:03d},x,@bulk{n},bulk{n},CANARY-bulk-{n:03d}-Qq1!" for n in range(60)]
    path = tmp_path / "bulk.csv"
    path.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [str(GOVERN), "import", str(path), "--from", "csv", "--apply"],
        env=shell.environment("alice"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while count(shell.db_url, "account") < 5:
        assert process.poll() is None, "the import finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    half = count(shell.db_url, "account")
    assert 5 <= half < 60
    shell.run("audit", "verify")  # what was committed is whole
    summary = json.loads(shell.run("import", str(path), "--from", "csv", "--apply", "--json").stdout)
    assert summary["created"] == 60 - half  # what the killed run committed exists and is skipped
    assert summary["skipped"] == half
    slugs = [a["account"] for a in shell.json("account", "list")]
    assert len(slugs) == len(set(slugs)) == 60
    for slug in ("x-bulk-000", "x-bulk-059"):
        assert len(shell.json("secret", "history", slug)) == 1
    shell.run("audit", "verify")


# -- bad input: one clear line, the place in the file, nothing written ----------------------


@pytest.fixture
def empty(govern: Govern) -> Govern:
    govern.init()
    govern.enrol("bob")
    return govern


def _refused(g: Govern, path: Path, fmt: str, *expected: str, code: int = 2) -> str:
    result = g("import", str(path), "--from", fmt, "--apply")
    assert result.code == code, result.err
    assert result.err.count("\n") == 1, result.err
    for text in expected:
        assert text in result.err
    assert "CANARY" not in result.err + result.out
    assert g.ok("account", "list", "--json").json() == []
    return result.err


def test_malformed_csv_names_its_line(empty: Govern, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('name,url,username,password,note\nx.com,https://x.com/,a,CANARY-1,\n"x.com,https://x.com/,b\n')
    _refused(empty, path, "chrome-csv", "line 3", "malformed")


def test_a_row_with_the_wrong_number_of_fields_names_its_line(empty: Govern, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,url,username,password,note\nx.com,https://x.com/,a,CANARY-1,\nx.com,https://x.com/\n")
    _refused(empty, path, "chrome-csv", "line 3", "2 fields")


def test_unknown_column_set_is_refused(empty: Govern, tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("site,login,secret\nx.com,a,CANARY-1\n")
    _refused(empty, path, "chrome-csv", "line 1", "unknown column set")
    # The right file given the wrong --from is the same error.
    _refused(empty, DATA / "lastpass.csv", "bitwarden-csv", "unknown column set")


def test_encrypted_bitwarden_export_says_how_to_export_and_shred(empty: Govern, tmp_path: Path) -> None:
    path = tmp_path / "encrypted.json"
    path.write_text(
        json.dumps(
            {
                "encrypted": True,
                "passwordProtected": True,
                "salt": "c2FsdA==",
                "kdfType": 0,
                "kdfIterations": 600000,
                "encKeyValidation_DO_NOT_EDIT": "2.aaaa|bbbb|cccc",
                "data": "2.dddd|eeee|ffff",
            }
        )
    )
    _refused(empty, path, "bitwarden-json", "encrypted", "'.json'", "shred")
    restricted = tmp_path / "restricted.json"
    restricted.write_text(json.dumps({"encrypted": True, "encKeyValidation_DO_NOT_EDIT": "2.a|b|c", "items": []}))
    _refused(empty, restricted, "bitwarden-json", "encrypted", "shred")


def test_invalid_totp_seed_names_the_entry_and_writes_nothing(empty: Govern, tmp_path: Path) -> None:
    path = tmp_path / "seed.csv"
    path.write_text(
        "account,platform,handle,username,password,totp\n"
        "x-one,x,@one,one,CANARY-one-Qq1!x,\n"
        "x-two,x,@two,two,CANARY-two-Qq1!x,NOT-A-SEED-1!\n"
    )
    _refused(empty, path, "csv", "line 3", "not a valid 2FA seed")
    short = tmp_path / "short.csv"
    short.write_text("account,platform,handle,password,totp\nx-one,x,@one,CANARY-one-Qq1!x,JBSWY3DPEHPK\n")
    _refused(empty, short, "csv", "line 2", "at least 80")


def test_keepass_kdbx_inner_xml_with_protected_values_is_refused(empty: Govern, tmp_path: Path) -> None:
    text = (DATA / "keepass.xml").read_text().replace('ProtectInMemory="True"', 'Protected="True"')
    path = tmp_path / "inner.xml"
    path.write_text(text)
    _refused(empty, path, "keepass-xml", "Export > KeePass XML", "shred")


def test_xml_bomb_is_refused(empty: Govern, tmp_path: Path) -> None:
    path = tmp_path / "bomb.xml"
    entities = "".join(f'<!ENTITY e{n} "&e{n - 1};&e{n - 1};&e{n - 1};&e{n - 1};">' for n in range(1, 12))
    path.write_text(
        f'<?xml version="1.0"?><!DOCTYPE KeePassFile [<!ENTITY e0 "boom">{entities}]>'
        "<KeePassFile><Root><Group><Entry><String><Key>Title</Key><Value>&e11;</Value>"
        "</String></Entry></Group></Root></KeePassFile>"
    )
    _refused(empty, path, "keepass-xml", "DTD")


def test_zip_bomb_1pux_is_refused(empty: Govern, tmp_path: Path) -> None:
    """export.data inflating far beyond the bound, its header lying about the size."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export.attributes", "{}")
        archive.writestr("export.data", b"[" + b" " * (40 * 1024 * 1024) + b"]")
    raw = bytearray(buf.getvalue())
    assert len(raw) < 200 * 1024  # a small file
    path = tmp_path / "bomb.1pux"
    path.write_bytes(bytes(raw))
    _refused(empty, path, "1password-1pux", "inflates")
    # The same bomb with the sizes in its headers rewritten to look small.
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as archive:
        local = archive.getinfo("export.data").header_offset
    central = raw.rfind(b"PK\x01\x02")  # the last central entry is export.data's
    for offset in (local + 22, central + 24):
        raw[offset : offset + 4] = (100).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    err = _refused(empty, path, "1password-1pux")
    assert "inflates" in err or "cannot be read" in err


def test_not_a_zip_for_1pux_and_a_zip_for_csv(empty: Govern, tmp_path: Path) -> None:
    _refused(empty, DATA / "chrome.csv", "1password-1pux", "zip")
    _refused(empty, DATA / "1password.1pux", "chrome-csv", "zip archive")


def test_a_device_or_folder_is_refused(empty: Govern, tmp_path: Path) -> None:
    assert empty("import", "/dev/zero", "--from", "csv").code == 2
    assert empty("import", str(tmp_path), "--from", "csv").code == 2
    assert empty("import", str(tmp_path / "missing.csv"), "--from", "csv").code == 3


def test_unknown_format_is_a_usage_error(empty: Govern) -> None:
    result = empty("import", str(DATA / "chrome.csv"), "--from", "safari")
    assert result.code == 2
    assert "chrome-csv" in result.err


def test_only_admins_import(empty: Govern) -> None:
    result = empty("import", str(DATA / "chrome.csv"), "--from", "chrome-csv", "--apply", as_="bob")
    assert result.code == 4
    assert empty.ok("account", "list", "--json").json() == []


def test_all_imports_other_sites_as_other(empty: Govern) -> None:
    result = empty.ok("import", str(DATA / "chrome.csv"), "--from", "chrome-csv", "--all", "--apply", "--json")
    assert json.loads(result.out)["created"] == 3
    platforms = {a["account"]: a["platform"] for a in empty.ok("account", "list", "--json").json()}
    assert platforms["other-acme-dev"] == "other"


def test_weak_imported_password_is_flagged_not_refused(empty: Govern) -> None:
    fmt = SAMPLES["generic.csv"][0]
    dry = json.loads(empty.ok("import", str(DATA / "generic.csv"), "--from", fmt, "--json").out)
    weak = {i["account"]: i["weak_password"] for i in dry["items"]}
    assert weak == {"x-acme": False, "tt-acme": True}  # 24 characters: TikTok allows 20
    empty.ok("import", str(DATA / "generic.csv"), "--from", fmt, "--apply")
    events = [e for e in empty.ok("audit", "log", "--json").json() if e["action"] == "secret.set"]
    flagged = {e["account"]: e["data"].get("weak_password") for e in events}
    assert flagged["x-acme"] is None
    assert flagged["tt-acme"]["broken"] == ["at most 20 characters"]
    account = {a["account"]: a for a in empty.ok("account", "list", "--json").json()}["x-acme"]
    assert account["owner"] == "alice"
    assert account["team"] == "comms"
    assert account["rotate_every"] == "60d"


def test_duplicate_account_in_generic_csv_is_refused(empty: Govern, tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("account,platform,handle,password\nx-a,x,@a,CANARY-a-Qq1!x\nx-a,x,@a,CANARY-b-Qq1!x\n")
    _refused(empty, path, "csv", "line 3", "twice")


def test_one_passphrase_for_the_whole_import(empty: Govern) -> None:
    """The passphrase comes once on stdin: a second prompt would find stdin exhausted."""
    result = empty(
        "--passphrase-stdin",
        "import",
        str(DATA / "chrome.csv"),
        "--from",
        "chrome-csv",
        "--apply",
        passphrase=None,
        input=passphrase_of("alice") + "\n",
        env={"GOVERN_CACHE_TTL": "0"},  # no keyring cache: only this command's one unlock
    )
    assert result.code == 0, result.err
    assert len(empty.ok("account", "list", "--json").json()) == 2


@pytest.mark.tampers
def test_import_completed_signed_by_a_member_breaks_the_rules_of_the_log(empty: Govern) -> None:
    """Bob signs an import.completed with his real key: the log's rules make it admins only."""
    from sqlalchemy import create_engine
    from sqlmodel import Session
    from test_domain import keys_of

    from audit.log import AuditTransaction
    from govern.timeutil import utcnow

    bob = keys_of(empty.db, "bob")

    class BobSigner:
        handle = "bob"
        key_fingerprint = bob.public.fingerprint

        def sign(self, message: bytes) -> bytes:
            return bob.sign(message)

    engine = create_engine(empty.db)
    try:
        with Session(engine) as session:
            tx = AuditTransaction(session, "bob", utcnow())
            tx.append("import.completed", data={"format": "csv", "sha256": "0" * 64, "created": 0})
            tx.seal(BobSigner())
            session.commit()
    finally:
        engine.dispose()
    result = empty("audit", "verify")
    assert result.code == 6
    assert "import.completed by bob, a member: only admin may sign it" in result.err  # the rule table (issue 19)
