"""Shell completion: ``govern completion bash|zsh|fish`` prints the script; the shell then
runs ``govern`` with ``_GOVERN_COMPLETE`` set, answered by :func:`answer_shell`.

The scripts read the answers one candidate a line and take them literally (never ``eval``,
no globbing), and only printable single words are answered. Account slugs and handles come
from the vault's rows, read-only, without a passphrase, a prompt or a log verification;
only names that pass govern's own syntax (slugs of ``[a-z0-9-]``, handles of
``[a-z0-9._-]``) are offered, so a hostile row can never put a shell metacharacter in front
of the shell. Completion never fails loudly: any problem (no vault, a locked or unreachable
database) completes nothing.
"""

import os
import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from typer import _click as click  # Typer's own click: the classes its commands are made of

COMPLETE_VAR = "_GOVERN_COMPLETE"
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_HANDLE = re.compile(r"[a-z][a-z0-9._-]{0,31}")
_ACCOUNT_OPTIONS = {"--account"}
_HANDLE_OPTIONS = {"--as", "--owner", "--staff"}
_MAX_NAMES = 5000


_BASH = """\
# govern completion for bash: eval "$(govern completion bash)" in ~/.bashrc
_govern_completion() {
    local IFS=$'\\n'
    # One candidate a line, taken literally: no eval, no globbing, no word splitting.
    mapfile -t COMPREPLY < <(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD="$COMP_CWORD" \\
        _GOVERN_COMPLETE=bash_complete "$1" 2>/dev/null)
    return 0
}
complete -o default -F _govern_completion govern
"""

_ZSH = """\
#compdef govern
# govern completion for zsh: eval "$(govern completion zsh)" in ~/.zshrc (after compinit)
_govern_completion() {
    local -a completions
    # One candidate a line, taken literally: no eval.
    completions=("${(@f)$(env COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT-1)) \\
        _GOVERN_COMPLETE=zsh_complete govern 2>/dev/null)}")
    completions=(${completions:#})
    if (( ${#completions} )); then
        compadd -a completions
    else
        _files
    fi
}
compdef _govern_completion govern
"""

_FISH = """\
# govern completion for fish: govern completion fish > ~/.config/fish/completions/govern.fish
function __govern_complete
    env _GOVERN_COMPLETE=fish_complete COMP_WORDS=(commandline -cp) COMP_CWORD=(commandline -t) govern 2>/dev/null
end
complete --command govern --arguments "(__govern_complete)"
"""

SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}
_PRINTABLE = re.compile(r"[!-~]+")


def _completer(shell: str) -> Any:
    """A completer on Typer's own click: the arguments as the script sends them, values alone."""
    from typer._click.shell_completion import CompletionItem, ShellComplete, split_arg_string

    class Completer(ShellComplete):
        name = shell
        source_template = SCRIPTS[shell]

        def source_vars(self) -> dict[str, Any]:
            return {}

        def source(self) -> str:
            return self.source_template

        def get_completion_args(self) -> tuple[list[str], str]:
            words = split_arg_string(os.environ.get("COMP_WORDS", ""))
            if shell == "fish":  # the word being completed comes apart, and is in COMP_WORDS too
                current = os.environ.get("COMP_CWORD", "")
                incomplete = split_arg_string(current)[0] if current.strip() else ""
                args = words[1:]
                if incomplete and args and args[-1] == incomplete:
                    args.pop()
                return args, incomplete
            index = int(os.environ.get("COMP_CWORD", "0"))
            return words[1:index], words[index] if index < len(words) else ""

        def format_completion(self, item: CompletionItem) -> str:
            value = str(item.value)
            # Anything but one printable word (a space, a newline, a control) is never offered.
            return value if _PRINTABLE.fullmatch(value) else ""

        def complete(self) -> str:
            args, incomplete = self.get_completion_args()
            lines = (self.format_completion(item) for item in self.get_completions(args, incomplete))
            return "\n".join(line for line in lines if line)

    return Completer


def completion(
    shell: Annotated[str, typer.Argument(metavar="SHELL", help="bash, zsh or fish.")],
) -> None:
    """Print the shell completion script (add it to your shell's startup file)."""
    from govern.errors import InvalidInput

    if shell not in SCRIPTS:
        raise InvalidInput(f"unknown shell {shell!r}: use bash, zsh or fish")
    sys.stdout.write(SCRIPTS[shell])


def answer_shell(cli: "click.Command") -> int:
    """Answer the shell (``_GOVERN_COMPLETE=bash_complete`` …); silent whatever happens."""
    instruction = os.environ.get(COMPLETE_VAR, "")
    shell = instruction.partition("_")[0]
    try:
        if shell not in SCRIPTS or not instruction.endswith("_complete"):
            return 0
        _attach(cli)
        answer = _completer(shell)(cli, {}, "govern", COMPLETE_VAR).complete()
        sys.stdout.write(answer + ("\n" if answer else ""))
    except Exception:  # noqa: S110  (completion must never show an error in the middle of a command line)
        pass
    return 0


def _attach(command: "click.Command") -> None:
    """Give every ACCOUNT and HANDLE parameter of the command tree its completer."""
    for param in command.params:
        names = set(getattr(param, "opts", []))
        metavar = getattr(param, "metavar", None)
        if metavar == "ACCOUNT" or names & _ACCOUNT_OPTIONS:
            param._custom_shell_complete = _accounts
        elif metavar == "HANDLE" or names & _HANDLE_OPTIONS:
            param._custom_shell_complete = _handles
    for sub in getattr(command, "commands", {}).values():
        _attach(sub)


def _accounts(ctx: "click.Context", _param: "click.Parameter", incomplete: str) -> list[str]:
    return _names(ctx, "SELECT slug FROM account", _SLUG, incomplete)


def _handles(ctx: "click.Context", _param: "click.Parameter", incomplete: str) -> list[str]:
    return _names(ctx, "SELECT handle FROM person", _HANDLE, incomplete)


def _names(ctx: "click.Context", query: str, syntax: re.Pattern[str], incomplete: str) -> list[str]:
    try:
        rows = _read(ctx.find_root().params.get("db_url"), query)
    except Exception:
        return []
    names = {value for (value,) in rows if isinstance(value, str) and syntax.fullmatch(value)}
    return sorted(name for name in names if name.startswith(incomplete))[:_MAX_NAMES]


def _read(db_option: Any, query: str) -> list[tuple[Any, ...]]:
    """Rows of ``query``, read-only: a SQLite file is never created, a server never waited on."""
    from govern.settings import resolve_db_url

    url = resolve_db_url(db_option if isinstance(db_option, str) else None)
    if url.startswith("sqlite:///"):
        import sqlite3
        from urllib.parse import quote

        path = url[len("sqlite:///") :]
        if not os.path.isfile(path):
            return []
        lite = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=0.5)
        try:
            return lite.execute(query).fetchall()
        finally:
            lite.close()
    from sqlalchemy import create_engine, text

    connect_args = {"connect_timeout": 2} if url.startswith("postgresql") else {}
    engine = create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            if url.startswith("postgresql"):
                connection.execute(text("SET TRANSACTION READ ONLY"))
                connection.execute(text("SET LOCAL statement_timeout = 2000"))
            return [tuple(row) for row in connection.execute(text(query)).fetchall()]
    finally:
        engine.dispose()
