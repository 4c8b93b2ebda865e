"""The ``deeper`` command: thin subcommands over the library.

Each module in this package registers its subcommands with :func:`command`;
adding a module is enough to add commands.
Errors the user can fix (:class:`~deeper.errors.DeeperError`, missing or
unwritable files) are printed as one line, never as a traceback.  With
``--json`` a command prints one JSON object as the last line of stdout and
keeps its human-readable text on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable

from deeper import __version__

_COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = []


def command(name: str, help: str):
    """Register ``configure(parser)`` as subcommand ``name``.

    ``configure`` adds the options and sets ``run(args, out) -> dict | None`` with
    ``parser.set_defaults(run=...)``; a returned dict is the ``--json`` result.
    """

    def deco(configure):
        _COMMANDS.append((name, help, configure))
        return configure

    return deco


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), naming the command's --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def bound_numbers(parser: argparse.ArgumentParser) -> None:
    """Give every ``int``/``float`` option of ``parser`` (and its sub-parsers) its range from
    :data:`deeper.validate.RANGES`: values outside it are refused while parsing, and ``--help`` shows it.

    An option missing from the table gets a generic range (non-negative, below 1e9); the test suite
    requires every option to be in the table.
    """
    from deeper.validate import BIG, RANGES, Range, count, nonnegative

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                bound_numbers(child)
            continue
        if action.type not in (int, float):
            continue
        rng: Range = RANGES.get(action.dest) or (
            count(0, BIG) if action.type is int else nonnegative(float(BIG))
        )
        action.type = _range_type(rng)
        action.range = rng
        if action.help and action.help != argparse.SUPPRESS:
            action.help = f"{action.help} ({rng.describe()})"


def _range_type(rng):
    def parse(text: str):
        try:
            return rng.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = rng.kind.__name__
    return parse


class Output:
    """Where a command's text goes: stdout normally, stderr when ``--json`` owns stdout."""

    def __init__(self, as_json: bool):
        self.as_json = as_json

    def line(self, text: str = "") -> None:
        print(text, file=sys.stderr if self.as_json else sys.stdout)

    def result(self, obj: dict) -> None:
        if self.as_json:
            print(json.dumps(_jsonable(obj)))


def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def png_output(path: str, flag: str = "--output") -> str:
    """``path`` when it names a PNG file; else a one-line :class:`ConfigError` naming ``flag``."""
    from deeper.errors import ConfigError

    if not path.lower().endswith(".png"):
        raise ConfigError(f"{flag} {path!r} must be a .png file")
    return path


def add_gallery_size(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--max`` and ``--columns`` of an image gallery; :func:`check_gallery_size` checks them."""
    parser.add_argument("--max", type=int, default=100, help=f"{prefix}draw at most this many images")
    parser.add_argument("--columns", type=int, default=10, help=f"{prefix}images per row")


def check_gallery_size(args: argparse.Namespace) -> None:
    from deeper.errors import ConfigError

    if args.max < 1 or args.columns < 1:
        raise ConfigError("--max and --columns must be at least 1")


def parse_kv(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` (a repeatable option's argument) as ``(key, value)``, the value read as YAML data
    (numbers, booleans, strings, lists: :func:`deeper.validate.load_yaml`; tags and malformed YAML are
    refused in one line)."""
    from deeper.errors import ConfigError
    from deeper.validate import load_yaml

    key, sep, value = text.partition("=")
    if not sep or not key or not key.replace("-", "_").isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a name, got {text!r}")
    try:
        parsed = load_yaml(value, key)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return key.replace("-", "_"), parsed


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object as the last line of stdout"
    )


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="offline data folder with one sub-folder per dataset (default: $DEEPER_DATA, then the download cache)",
    )


def _load_command_modules() -> None:
    """Import every module of this package: each registers its subcommands with :func:`command`."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()

    parser = _Parser(
        prog="deeper",
        description="deeper: train, evaluate and take apart the image-recognition networks of "
        "'Deep Learning from Scratch', chapter 8.",
        epilog="Run 'deeper COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"deeper {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    parser.subcommands = {}
    for name, help_text, configure in _COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Formatter)
        configure(p)
        bound_numbers(p)
        parser.subcommands[name] = p
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``deeper`` command: its exit code (0, 1 for a user's error, 2 for a usage error, 130 on Ctrl-C)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also while the command modules are still being imported
        print("deeper: interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    from deeper.errors import DeeperError

    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # report it against the subcommand
            parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # a usage error (one line already printed): its code; --help and --version exit 0
        if e.code in (0, None):
            raise
        return int(e.code)
    out = Output(getattr(args, "json", False))
    try:
        result = args.run(args, out)
    except DeeperError as e:
        code = getattr(e, "exit_code", 1)
        print(f"deeper {args.command}: error: {e}", file=sys.stderr)
        return code
    except OSError as e:  # unwritable output folder, disk full, ...
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"deeper {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"deeper {args.command}: interrupted", file=sys.stderr)
        return 130
    if result is not None:
        out.result(result)
    return 0
