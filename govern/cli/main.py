"""The entry point: the one place that turns errors into a line and an exit code."""

import sys
import traceback


def _debug_requested(argv: list[str]) -> bool:
    import os

    return "--debug" in argv or os.environ.get("GOVERN_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; exit with the documented code (docs/exit-codes.md)."""
    import os

    os.umask(0o077)
    args = sys.argv[1:] if argv is None else argv
    code = run(args)
    import signal

    # The command is over (its outcome decided): a late Ctrl-C must not turn it into a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``govern audit log | head``): not an error; silence the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)


def run(args: list[str]) -> int:
    import typer

    from govern.errors import ExitCode, GovernError

    debug = _debug_requested(args)
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            _error("an argument is not valid UTF-8 text (check the terminal's encoding)")
            return int(ExitCode.USAGE)
    try:
        return _dispatch(args)
    except GovernError as exc:
        _error(str(exc))
        return int(exc.exit_code)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:
        # Usage errors of the command line itself (unknown option, missing argument…).
        usage_ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and usage_ctx is not None:
            print(usage_ctx.get_help(), file=sys.stderr)
            return int(ExitCode.USAGE)
        hint = f" (see '{usage_ctx.command_path} --help')" if usage_ctx is not None else ""
        _error(f"{exc.format_message()}{hint}")
        return int(ExitCode.USAGE)
    except (KeyboardInterrupt, typer.Abort, EOFError):
        _error("interrupted")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return 0
    except Exception as exc:
        mapped = _map_foreign(exc)
        if mapped is not None:
            _error(mapped[1])
            return int(mapped[0])
        if debug:
            traceback.print_exc()
        _error(f"unexpected {type(exc).__name__}; this is a bug (run with --debug for details)")
        return int(ExitCode.FAILURE)
    finally:
        from govern import interrupts
        from govern.cli.common import close_contexts

        close_contexts()
        interrupts.reset()


def _dispatch(args: list[str]) -> int:
    import os

    from typer.main import get_command

    from govern.cli.app import app

    if os.environ.get("_GOVERN_COMPLETE"):  # the shell asks for completions (never an error)
        from govern.cli.completion import answer_shell

        return answer_shell(get_command(app))
    result = get_command(app).main(args=args, prog_name="govern", standalone_mode=False)
    return result if isinstance(result, int) else 0


def _map_foreign(exc: Exception) -> "tuple[int, str] | None":
    """Errors of the lower packages (vault, audit, the database) that users can meet."""
    from govern.errors import ExitCode

    module = type(exc).__module__
    if module.startswith("vault"):
        from vault import IntegrityError, WeakParametersError

        if isinstance(exc, IntegrityError):
            return ExitCode.INTEGRITY, str(exc)
        if isinstance(exc, WeakParametersError):
            return ExitCode.USAGE, str(exc)
    if module.startswith("audit"):
        from audit.errors import ChainError

        if isinstance(exc, ChainError):
            return ExitCode.INTEGRITY, f"audit chain broken: {exc}"
    if isinstance(exc, OverflowError):
        # The only numbers that reach the database come from the command line (ids, versions).
        return ExitCode.USAGE, "a number is out of range"
    if module.startswith("sqlalchemy"):
        from sqlalchemy.exc import ArgumentError, DatabaseError, DataError, OperationalError

        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        if isinstance(exc, OperationalError):
            return ExitCode.UNAVAILABLE, f"the database cannot be used now: {first}"
        if isinstance(exc, DataError):
            return ExitCode.USAGE, f"a number is out of range: {first}"
        if isinstance(exc, DatabaseError):
            return ExitCode.INTEGRITY, f"the database is damaged or not a govern vault: {first}"
        if isinstance(exc, ArgumentError):
            return ExitCode.USAGE, f"cannot use that database URL: {first}"
    return None


def _error(message: str) -> None:
    """One line on stderr. Messages carry what people typed and files supplied (a seal's
    signer, a handle, a path): every control character in them is made visible, newlines
    included, so nothing can rewrite the terminal or cut the line short."""
    from govern.cli.text import visible

    text = message.strip()
    print(f"govern: error: {visible(text) if text else 'error'}", file=sys.stderr)


if __name__ == "__main__":
    main()
