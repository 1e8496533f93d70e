"""``evacamel <command>`` and ``python -m evacamel <command>``.

Each command is a module of :mod:`evacamel.commands` that defines

* ``HELP``: one line for ``evacamel --help``;
* ``add_arguments(parser: argparse.ArgumentParser) -> None``;
* ``main(args: argparse.Namespace) -> int | None``.

The module's file name, with ``_`` written as ``-``, is the command's name
(``make_dataset.py`` -> ``evacamel make-dataset``). Commands are imported only when
run, so ``evacamel --help`` stays fast.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import os
import pickle
import pkgutil
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from types import ModuleType

from PIL import Image

__all__ = ["main", "build_parser", "command_names", "error_line", "USER_ERRORS"]


def _package_modules(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def command_names(package: str = "evacamel.commands") -> list[str]:
    """The CLI names of the commands in ``package`` (``make-dataset``, ``train``, ...)."""
    return [name.replace("_", "-") for name in _package_modules(package)]


def _load(package: str, cli_name: str) -> ModuleType:
    return importlib.import_module(f"{package}.{cli_name.replace('-', '_')}")


def _first_line(module_name: str) -> str:
    """The ``HELP`` line without importing the module (read from its source)."""
    spec = importlib.util.find_spec(module_name)
    if spec and spec.origin:
        with open(spec.origin, encoding="utf-8") as f:
            for line in f:
                if line.startswith("HELP"):
                    return line.split("=", 1)[1].strip().strip("\"'")
    return ""


def build_parser(package: str = "evacamel.commands", prog: str = "evacamel",
                 argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """A parser with one sub-command per module of ``package``.

    Only the module of the command named in ``argv`` (if any) is imported.
    """
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = argv[0] if argv else None
    for name in command_names(package):
        module_name = f"{package}.{name.replace('-', '_')}"
        if name == chosen:
            module = _load(package, name)
            p = sub.add_parser(name, help=module.HELP, description=module.HELP)
            module.add_arguments(p)
            p.set_defaults(_main=module.main)
        else:
            sub.add_parser(name, help=_first_line(module_name), add_help=False)
    return parser


# What a user can cause: bad files, bad archives, bad images, bad arguments, a full disk, a
# server that fails. Each becomes one line on stderr and exit status 1 (argparse's own usage
# errors stay 2). Set EVACAMEL_DEBUG=1 to see the traceback instead.
USER_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, KeyError, RuntimeError, EOFError, csv.Error, zipfile.BadZipFile,
    tarfile.TarError, pickle.UnpicklingError, Image.DecompressionBombError,
)


def main(argv: Sequence[str] | None = None, package: str = "evacamel.commands",
         prog: str = "evacamel") -> int:
    """Run one command; returns its exit status (0 success, 1 error, 2 usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(package, prog, argv)
    args = parser.parse_args(argv)
    try:
        status = args._main(args)
    except USER_ERRORS as exc:
        if os.environ.get("EVACAMEL_DEBUG"):
            raise
        print(f"{prog} {args.command}: error: {error_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


def error_line(exc: BaseException) -> str:
    """One line for an exception: its message (a KeyError's without quotes), else its type."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in str(exc):
        message = f"{exc.filename}: {exc.strerror or exc}"
    text = " ".join(str(message).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."
