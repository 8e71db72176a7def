"""The error hierarchy and the exit codes (docs/exit-codes.md).

Exit code values are a published contract: they are never renumbered or reused.
Each error carries its code; the CLI's single handler prints one line and exits.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    NOT_FOUND = 3
    DENIED = 4
    AUTH = 5
    INTEGRITY = 6
    CHECK = 7
    CONFLICT = 8
    UNAVAILABLE = 9
    INTERRUPTED = 130


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "unexpected failure (a bug: one line, details with --debug)",
    ExitCode.USAGE: "usage error or invalid input",
    ExitCode.NOT_FOUND: "not found",
    ExitCode.DENIED: "denied: role, missing grant, own request, holder cap, policy not acknowledged",
    ExitCode.AUTH: "authentication failed: wrong passphrase, unknown, suspended or offboarded person",
    ExitCode.INTEGRITY: (
        "integrity failure: ciphertext fails to open, audit chain broken, state not explained by the log"
    ),
    ExitCode.CHECK: "check found problems: overdue or exposed credentials, offboarding past its deadline",
    ExitCode.CONFLICT: "conflict: already exists, rotation already pending, request already decided",
    ExitCode.UNAVAILABLE: (
        "unavailable: the database or a notification server cannot be reached or written (network, disk full, locked)"
    ),
    ExitCode.INTERRUPTED: "interrupted",
}


class GovernError(Exception):
    """Base of every error the user is meant to see. The message says what to do."""

    exit_code: ExitCode = ExitCode.FAILURE


class InvalidInput(GovernError):
    exit_code = ExitCode.USAGE


class NotFound(GovernError):
    exit_code = ExitCode.NOT_FOUND


class Denied(GovernError):
    exit_code = ExitCode.DENIED


class AuthenticationFailed(GovernError):
    exit_code = ExitCode.AUTH


class IntegrityFailure(GovernError):
    exit_code = ExitCode.INTEGRITY


class CheckFailed(GovernError):
    exit_code = ExitCode.CHECK


class Conflict(GovernError):
    exit_code = ExitCode.CONFLICT


class Unavailable(GovernError):
    """The database cannot be reached, opened or written: retry when it is back."""

    exit_code = ExitCode.UNAVAILABLE
