"""``audit evidence``: one zip for a period, verified offline after copying it to an empty
folder, and a one-byte change anywhere in it caught."""

import hashlib
import json
import random
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, Govern

from govern.services.evidence import MEMBERS, build_zip


def offline(tmp_path: Path, name: str) -> dict[str, str]:
    """A client that never saw the vault, and no database at all."""
    folder = tmp_path / name
    return {
        "GOVERN_STATE_DIR": str(folder / "state"),
        "GOVERN_HOME": str(folder / "home"),
        "GOVERN_DB_URL": f"sqlite:///{folder / 'no-database-here.db'}",
    }


@pytest.fixture
def pack(vault: Govern, tmp_path: Path) -> Path:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("secret", "show", "x-acme", as_="bob")
    assert vault("secret", "show", "x-acme", as_="carol-who-does-not-exist").code == 5
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "moved team")
    start = vault.ok("audit", "log", "--json").json()[0]["ts"]
    out = tmp_path / "evidence" / "q3.zip"
    out.parent.mkdir()
    vault.ok("audit", "evidence", "--from", start, "--to", "now", "--out", str(out))
    return out


def test_the_pack_holds_everything_and_verifies(vault: Govern, pack: Path) -> None:
    assert pack.stat().st_mode & 0o777 == 0o600
    with zipfile.ZipFile(pack) as archive:
        assert tuple(archive.namelist()) == MEMBERS
        body = {name: archive.read(name) for name in MEMBERS}
    manifest = json.loads(body["manifest.json"])
    for member in manifest["members"]:
        assert hashlib.sha256(body[member["name"]]).hexdigest() == member["sha256"]
    log = vault.ok("audit", "log", "--json").json()
    assert manifest["period"] == {"first_seq": 1, "last_seq": log[-1]["seq"], "events": len(log)}
    report = json.loads(body["report.json"])
    assert report["accounts"][0]["account"] == "x-acme"
    assert b"<svg" in body["report.html"]
    assert b'"anchored_by": "pin' in body["verification.txt"] or b"checkpoint (event" in body["verification.txt"]
    for data in body.values():
        assert CANARY_PASSWORD.encode() not in data
    checked = vault.ok("audit", "verify", "--evidence", str(pack), "--json").json()
    assert checked["signed_by"].startswith("alice (")
    assert checked["last_seq"] >= report["verification"]["last_seq"]


def test_the_pack_verifies_offline_after_copying_it_to_an_empty_folder(
    vault: Govern, pack: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "auditor-laptop"
    empty.mkdir()
    copy = empty / "q3.zip"
    shutil.copyfile(pack, copy)
    env = offline(tmp_path, "fresh-client")
    result = vault.ok("audit", "verify", "--evidence", str(copy), "--json", as_=None, env=env).json()
    assert "checkpoint" in result["anchored_by"]
    with zipfile.ZipFile(copy) as archive:
        archive.extractall(empty)
    export = vault.ok(
        "audit", "verify", "--export", str(empty / "events.jsonl"), "--checkpoint", str(empty / "checkpoint.json"),
        "--json", as_=None, env=env,
    ).json()  # fmt: skip
    assert export["events"] == result["events"]
    assert "checkpoint (event" in export["anchored_by"]


def _spans(pack: Path) -> dict[str, tuple[int, int]]:
    """Where each member's bytes and each header lie in the file."""
    raw = pack.read_bytes()
    spans: dict[str, tuple[int, int]] = {}
    with zipfile.ZipFile(pack) as archive:
        for info in archive.infolist():
            start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
            spans[info.filename] = (start, start + info.compress_size)
            spans[f"local header of {info.filename}"] = (info.header_offset, start)
    directory = raw.rfind(b"PK\x01\x02", 0, raw.rfind(b"PK\x05\x06"))
    spans["central directory"] = (raw.find(b"PK\x01\x02"), directory + 46)
    spans["end of central directory"] = (raw.rfind(b"PK\x05\x06"), len(raw))
    return spans


@pytest.mark.parametrize("where", [*MEMBERS, "headers and directory", "anywhere (seeded sample)"])
def test_a_one_byte_change_anywhere_in_the_pack_is_caught(
    vault: Govern, pack: Path, tmp_path: Path, where: str
) -> None:
    raw = pack.read_bytes()
    spans = _spans(pack)
    if where in MEMBERS:
        start, end = spans[where]
        offsets = [start, (start + end) // 2, end - 1]
    elif where == "headers and directory":
        offsets = [s + k for name, (s, e) in spans.items() if not name.endswith(MEMBERS) or "header" in name
                   for k in (0, 10, (e - s) // 2, e - s - 1) if s + k < e]  # fmt: skip
    else:
        offsets = random.Random(13).sample(range(len(raw)), 25)  # noqa: S311  (a seeded sample of positions, not crypto)
    env = offline(tmp_path, "checker")
    for offset in offsets:
        changed = bytearray(raw)
        changed[offset] ^= 0x01
        target = tmp_path / f"changed-{offset}.zip"
        target.write_bytes(bytes(changed))
        result = vault("audit", "verify", "--evidence", str(target), as_=None, env=env)
        assert result.code == 6, f"a change at byte {offset} ({where}) was not caught: {result.err}"
        assert "Traceback" not in result.err
        target.unlink()


def test_attack_evidence_member_replaced_with_a_recomputed_manifest_is_caught(
    vault: Govern, pack: Path, tmp_path: Path
) -> None:
    """Someone edits the report and fixes up the manifest's hash: the manifest's signature fails."""
    with zipfile.ZipFile(pack) as archive:
        body = {name: archive.read(name) for name in MEMBERS}
    body["report.json"] = body["report.json"].replace(b'"moved team"', b'"routine"')
    manifest = json.loads(body["manifest.json"])
    for member in manifest["members"]:
        if member["name"] == "report.json":
            member["sha256"] = hashlib.sha256(body["report.json"]).hexdigest()
            member["bytes"] = len(body["report.json"])
    body["manifest.json"] = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
    forged = tmp_path / "forged.zip"
    forged.write_bytes(build_zip(list(body.items())))
    result = vault("audit", "verify", "--evidence", str(forged), as_=None, env=offline(tmp_path, "c"))
    assert result.code == 6
    assert "signature" in result.err


def test_attack_evidence_member_replaced_in_a_rebuilt_zip_is_caught(vault: Govern, pack: Path, tmp_path: Path) -> None:
    """A rebuilt zip (valid CRCs, canonical layout) with one member changed: its hash fails."""
    with zipfile.ZipFile(pack) as archive:
        body = {name: archive.read(name) for name in MEMBERS}
    body["events.jsonl"] = body["events.jsonl"].replace(b'"moved team"', b'"routine"')
    forged = tmp_path / "forged.zip"
    forged.write_bytes(build_zip(list(body.items())))
    result = vault("audit", "verify", "--evidence", str(forged), as_=None, env=offline(tmp_path, "c"))
    assert result.code == 6
    assert "events.jsonl does not match its SHA-256" in result.err


def test_evidence_is_written_like_every_output_file(vault: Govern, pack: Path, tmp_path: Path) -> None:
    args = ["audit", "evidence", "--from", "2000-01-01", "--to", "now", "--out", str(pack)]
    assert vault(*args).code == 8, "an existing file is never overwritten without --force"
    before = pack.read_bytes()
    vault.ok(*args, "--force")
    assert pack.read_bytes() != before
    assert pack.stat().st_mode & 0o777 == 0o600
    link = tmp_path / "link.zip"
    link.symlink_to(tmp_path / "elsewhere.zip")
    assert vault("audit", "evidence", "--from", "2000-01-01", "--to", "now", "--out", str(link), "--force").code == 8
    assert not (tmp_path / "elsewhere.zip").exists()
    assert vault("audit", "evidence", "--from", "2000-01-01", "--to", "now", "--out", str(tmp_path / "m.zip"),
                 as_="bob").code == 4  # fmt: skip
    assert not (tmp_path / "m.zip").exists()
    assert vault("audit", "verify", "--evidence", str(pack), "--export", str(pack)).code == 2
