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
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["main", "build_parser", "command_names"]


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


def main(argv: Sequence[str] | None = None, package: str = "evacamel.commands",
         prog: str = "evacamel") -> int:
    """Run one command; returns its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(package, prog, argv)
    args = parser.parse_args(argv)
    try:
        status = args._main(args)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, RuntimeError) as exc:
        # Bad input: one clear line naming the problem, no traceback.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"{prog} {args.command}: error: {message}", file=sys.stderr)
        return 2
    return int(status or 0)
