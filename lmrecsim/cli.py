"""The ``lmrecsim`` command line.

Each subcommand lives in ``lmrecsim/commands/<name>.py`` with ``add_parser(subparsers)`` (which
registers the subcommand and sets ``func``) and a ``run(args) -> int``. Bad input (an unknown
scenario, an invalid file, a missing model) is one line on stderr and exit code 2, never a
traceback. Output piped to a reader that stops early (``| head``) ends the command quietly with
exit code 141, as SIGPIPE ends a Unix tool.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from lmrecsim import __version__
from lmrecsim.errors import report_user_errors

# Subcommand modules under lmrecsim.commands, in the order `lmrecsim --help` lists them.
COMMANDS = ["train", "evaluate", "replay", "ope", "demo", "scenarios", "runs", "bench"]


def build_parser() -> argparse.ArgumentParser:
    from lmrecsim.commands.common import OneLineArgumentParser

    parser = OneLineArgumentParser(
        prog="lmrecsim",
        description="Reinforcement-learning recommendation simulator with language-model-encoded users.",
    )
    parser.add_argument("--version", action="version", version=f"lmrecsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        import_module(f"lmrecsim.commands.{name}").add_parser(sub)
    return parser


# Output arguments that name a file to write; every other --out / --export is a folder.
FILE_OUTPUTS = {("bench", "out"), ("runs", "csv")}


def _run(args: argparse.Namespace) -> int:
    from lmrecsim.commands.common import prepare_output, remove_empty_folders

    # Before any work: a run of minutes must not end on an --out that cannot be written.
    created: list = []
    code = 2
    try:
        for name in ("out", "export", "csv"):
            folder = (args.command, name) not in FILE_OUTPUTS
            created += prepare_output(getattr(args, name, None), f"--{name}", folder=folder)
        code = int(args.func(args) or 0)
        return code
    finally:
        if code != 0:
            remove_empty_folders(created)  # a refused run leaves no empty output folder behind


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lmrecsim`` console script; returns the exit code.

    SIGTERM (``kill``, a job scheduler's stop) ends a command as Ctrl-C does: temp files and
    staging folders are removed, and one line says so (exit code 143; Ctrl-C gives 130).
    """
    # Importing the subcommands (torch, transformers) takes a second or two: a Ctrl-C or SIGTERM
    # then is one line too, not a traceback through the import machinery.
    return report_user_errors("lmrecsim", lambda: _run(build_parser().parse_args(argv)))


def exit_on_late_signals(code: int) -> None:
    """From now on, Ctrl-C (SIGINT) or SIGTERM ends the process at once with exit code ``code``.

    For the interpreter's shutdown after a command has finished and written its output (freeing
    torch, worker processes: a second or so). Python restores the default handlers there, so
    a signal then killed the process with status 130 or 143 and no line, and a finished command
    looked failed to a script that ran it. Standard output and error are flushed first.
    """
    import os
    import signal

    def finish(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):  # closed, or no stream
                pass
        os._exit(code)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, finish)


def console_main() -> None:
    """The ``lmrecsim`` console script and ``python -m lmrecsim``: :func:`main`, then exit with
    its code (see :func:`exit_on_late_signals`)."""
    code = main()
    exit_on_late_signals(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console_main()
