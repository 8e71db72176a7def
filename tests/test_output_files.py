"""Output files (issue 10, DESIGN.md property 8): one way to write them, for every --out.

Created new through a temporary file in the same folder (O_CREAT|O_EXCL|O_NOFOLLOW, 0600),
moved into place only when complete; an existing file is refused (exit 8) unless --force;
a symbolic link is never followed nor replaced, even with --force; a failure leaves no
partial file and no earlier file damaged.
"""

import os
import stat
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from conftest import Govern

from govern.errors import Conflict, IntegrityFailure, InvalidInput
from govern.outfile import output_file, write_output

PRECIOUS = "precious evidence of last quarter\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def out_commands(vault: Govern) -> dict[str, list[str]]:
    """Every command that writes an --out file and takes --force (bob offboarded for the last)."""
    vault.ok("offboard", "start", "bob", "--reason", "left the company")
    return {
        "audit export": ["audit", "export", "--format", "jsonl"],
        "audit report": ["audit", "report"],
        "offboard report": ["offboard", "report", "bob"],
    }


def test_export_out_refuses_a_symlink_planted_in_a_shared_folder(vault: Govern, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text(PRECIOUS)
    planted = shared / "evidence.jsonl"
    planted.symlink_to(victim)
    dangling = shared / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "created-by-govern.txt")
    for target in (planted, dangling):
        for extra in ([], ["--force"]):
            result = vault("audit", "export", "--format", "jsonl", "--out", str(target), *extra)
            assert result.code == 8, result.err
            assert "symbolic link" in result.err
            assert str(target) in result.err
            assert result.err.count("\n") == 1
            assert "Traceback" not in result.err
    assert victim.read_text() == PRECIOUS
    assert not (tmp_path / "created-by-govern.txt").exists()
    assert planted.is_symlink()
    assert dangling.is_symlink()
    assert leftovers(shared) == []


def test_every_out_refuses_a_symlink_even_with_force(vault: Govern, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text(PRECIOUS)
    for name, command in out_commands(vault).items():
        link = tmp_path / f"{name.replace(' ', '-')}.out"
        link.symlink_to(victim)
        for extra in ([], ["--force"]):
            result = vault(*command, "--out", str(link), *extra)
            assert result.code == 8, (name, result.err)
            assert link.is_symlink()
    checkpoint_link = tmp_path / "checkpoint.json"
    checkpoint_link.symlink_to(victim)
    assert vault("audit", "checkpoint", "--out", str(checkpoint_link)).code == 8
    assert victim.read_text() == PRECIOUS
    assert leftovers(tmp_path) == []


def test_export_out_refuses_to_overwrite_without_force(vault: Govern, tmp_path: Path) -> None:
    evidence = tmp_path / "evidence.jsonl"
    evidence.write_text(PRECIOUS)
    evidence.chmod(0o666)
    refused = vault("audit", "export", "--format", "jsonl", "--out", str(evidence))
    assert refused.code == 8
    assert str(evidence) in refused.err
    assert "--force" in refused.err
    assert evidence.read_text() == PRECIOUS
    vault.ok("audit", "export", "--format", "jsonl", "--out", str(evidence), "--force")
    assert evidence.read_text() != PRECIOUS
    assert mode(evidence) == 0o600, "the old file's 0666 mode is not kept"
    vault.ok("audit", "verify", "--export", str(evidence))
    assert leftovers(tmp_path) == []


def test_every_out_refuses_to_overwrite_without_force(vault: Govern, tmp_path: Path) -> None:
    for name, command in out_commands(vault).items():
        target = tmp_path / f"{name.replace(' ', '-')}.out"
        target.write_text(PRECIOUS)
        refused = vault(*command, "--out", str(target))
        assert refused.code == 8, (name, refused.err)
        assert "--force" in refused.err
        assert target.read_text() == PRECIOUS
        vault.ok(*command, "--out", str(target), "--force")
        assert target.read_text() != PRECIOUS
        assert mode(target) == 0o600
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text(PRECIOUS)
    assert vault("audit", "checkpoint", "--out", str(checkpoint)).code == 8
    assert checkpoint.read_text() == PRECIOUS
    assert leftovers(tmp_path) == []


def _failing_export(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """The export streams a few lines, then fails as a tampered log would (or Ctrl-C)."""
    from govern.services import auditing

    real = auditing.export_lines

    def export_lines(*args: Any, **kwargs: Any) -> Iterator[str]:
        for index, line in enumerate(real(*args, **kwargs)):
            if index == 3:
                raise error
            yield line

    monkeypatch.setattr(auditing, "export_lines", export_lines)


@pytest.mark.parametrize(
    ("error", "code"),
    [(IntegrityFailure("audit chain broken at event 4"), 6), (KeyboardInterrupt(), 130)],
    ids=["exit-6", "ctrl-c"],
)
def test_failed_export_leaves_the_previous_evidence_file_intact(
    vault: Govern, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException, code: int
) -> None:
    evidence = tmp_path / "evidence.jsonl"
    vault.ok("audit", "export", "--format", "jsonl", "--out", str(evidence))
    before = evidence.read_bytes()
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")  # more to export
    _failing_export(monkeypatch, error)
    failed = vault("audit", "export", "--format", "jsonl", "--out", str(evidence), "--force")
    assert failed.code == code, failed.err
    assert evidence.read_bytes() == before, "the earlier evidence file was damaged"
    fresh = tmp_path / "fresh.jsonl"
    assert vault("audit", "export", "--format", "csv", "--out", str(fresh)).code == code
    assert not fresh.exists(), "a failed export left a partial file"
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    vault.ok("audit", "verify", "--export", str(evidence))


def test_output_files_are_0600_whatever_the_umask(vault: Govern, tmp_path: Path, open_umask: None) -> None:
    written = []
    for name, command in out_commands(vault).items():
        target = tmp_path / f"{name.replace(' ', '-')}.out"
        vault.ok(*command, "--out", str(target))
        written.append(target)
    for fmt in ("csv", "ocsf"):
        target = tmp_path / f"export.{fmt}"
        vault.ok("audit", "export", "--format", fmt, "--out", str(target))
        written.append(target)
    checkpoint = tmp_path / "checkpoint.json"
    vault.ok("audit", "checkpoint", "--out", str(checkpoint))
    written.append(checkpoint)
    for path in written:
        assert mode(path) == 0o600, path
    assert leftovers(tmp_path) == []


def test_out_to_a_folder_or_a_missing_folder_is_one_line(vault: Govern, tmp_path: Path) -> None:
    for target, code in ((tmp_path, 2), (tmp_path / "missing" / "log.jsonl", 2)):
        result = vault("audit", "export", "--format", "csv", "--out", str(target), "--force")
        assert result.code == code, result.err
        assert result.err.count("\n") == 1
        assert "Traceback" not in result.err


# The module itself: races between the check and the move into place.


def _write_while(target: Path, force: bool, meanwhile: Callable[[], object]) -> None:
    with output_file(target, force=force) as out:
        out.write("what the attacker wants written elsewhere\n")
        meanwhile()


def test_a_symlink_planted_while_writing_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text(PRECIOUS)
    for force in (False, True):
        target = tmp_path / f"race-{force}.txt"
        with pytest.raises(Conflict):
            _write_while(target, force, partial(target.symlink_to, victim))  # after the check, before the move
        assert target.is_symlink()
        assert victim.read_text() == PRECIOUS
    assert leftovers(tmp_path) == []


def test_a_file_created_while_writing_is_not_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(Conflict):
        _write_while(target, False, lambda: target.write_text(PRECIOUS))
    assert target.read_text() == PRECIOUS
    assert leftovers(tmp_path) == []


def test_write_output_replaces_atomically_with_force(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    write_output(target, "one\n")
    with pytest.raises(Conflict, match="--force"):
        write_output(target, "two\n")
    write_output(target, "two\n", force=True)
    assert target.read_text() == "two\n"
    assert mode(target) == 0o600
    with pytest.raises(InvalidInput):
        write_output(tmp_path / "nowhere" / "out.txt", "x\n")
    assert leftovers(tmp_path) == []
