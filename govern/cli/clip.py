"""``--clip`` for reveals: the value goes to the clipboard, cleared later (govern.clipboard)."""

from typing import TYPE_CHECKING, Annotated

import typer

from govern.cli.common import notice

if TYPE_CHECKING:
    from govern.clipboard import Tool

ClipOpt = Annotated[
    bool,
    typer.Option(
        "--clip",
        "-c",
        help="Copy to the clipboard instead of printing; cleared after 45 s (GOVERN_CLIP_TIME).",
    ),
]


def prepare() -> tuple["Tool", int]:
    """Find the clipboard and the delay *before* anything is revealed (exit 2 without one)."""
    from govern.clipboard import clip_seconds, find_tool

    return find_tool(), clip_seconds()


def to_clipboard(prepared: tuple["Tool", int], value: str, what: str) -> None:
    from govern.clipboard import copy

    tool, seconds = prepared
    copy(tool, value, seconds)
    notice(f"copied {what} to the clipboard; it is cleared in {seconds} s unless something else is copied")
