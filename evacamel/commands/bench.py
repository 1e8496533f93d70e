"""``evacamel bench <name>``: benchmarks that compare two ways in one run."""

from __future__ import annotations

import argparse
import sys

HELP = "benchmarks that compare two ways in one run and print the ratio (bench --help)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="which benchmark: " + ", ".join(_names()))
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options")


def _names() -> list[str]:
    from evacamel.cli import command_names

    return command_names("evacamel.bench")


def main(args: argparse.Namespace) -> int:
    from evacamel.cli import main as cli_main

    if args.name not in _names():
        print(f"evacamel bench: unknown benchmark {args.name!r}; choose one of: "
              + ", ".join(_names()), file=sys.stderr)
        return 2
    return cli_main([args.name, *args.rest], package="evacamel.bench", prog="evacamel bench")
