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
_GROUP_OF: dict[str, str] = {}

#: what the commands are for, in the order ``deeper --help`` lists them; a command registered with its own
#: ``group`` joins (or opens) that group, one named nowhere is listed under "more"
GROUPS: dict[str, tuple[str, ...]] = {
    "train and tune": ("train", "finetune", "cv", "ensemble", "optimizers", "augment-preview"),
    "use trained models": ("predict", "eval", "misclassified", "serve", "play", "convert-book-weights"),
    "look inside models and data": (
        "summary",
        "heatmap",
        "profile",
        "models",
        "datasets",
        "tasks",
        "scenes",
        "segment-preview",
    ),  # fmt: skip
    "make models smaller and faster": ("quantize", "prune", "distill", "export"),
    "test the notes' claims": ("experiment",),
}


def command(name: str, help: str, group: str | None = None):
    """Register ``configure(parser)`` as subcommand ``name`` (``group``: its heading in ``deeper --help``,
    default: the one :data:`GROUPS` names it in).

    ``configure`` adds the options and sets ``run(args, out) -> dict | None`` with
    ``parser.set_defaults(run=...)``; a returned dict is the ``--json`` result.
    """

    def deco(configure):
        _COMMANDS.append((name, help, configure))
        if group is not None:
            _GROUP_OF[name] = group
        return configure

    return deco


def command_groups() -> dict[str, list[tuple[str, str]]]:
    """``{heading: [(command, help), ...]}`` of the registered commands, as ``deeper --help`` lists them."""
    of = {name: g for g, names in GROUPS.items() for name in names} | _GROUP_OF
    out: dict[str, list[tuple[str, str]]] = {g: [] for g in GROUPS}
    for name, help_text, _ in sorted(_COMMANDS, key=lambda c: _order(c[0])):
        out.setdefault(of.get(name, "more"), []).append((name, help_text))
    return {g: cmds for g, cmds in out.items() if cmds}


def _order(name: str) -> tuple[int, str]:
    for names in GROUPS.values():
        if name in names:
            return names.index(name), name
    return 1000, name


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default once: ``(default: X)`` is added only where the help text names none
    (no "default", no ``[X]``) and there is one to show (not None, not an unset flag)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or says_default(text):
            return text
        return super()._get_help_string(action)


def says_default(text: str) -> bool:
    """Whether a help text already names its default: "default" or a ``[value]`` (a range's
    ``in [low, high]`` is no default)."""
    import re

    return "default" in text.lower() or re.search(r"(?<!in )\[[^\]]+\]", text) is not None


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


class _TopParser(_Parser):
    """``deeper --help``: the commands grouped by what they are for."""

    def format_help(self) -> str:
        import shutil
        import textwrap

        width = min(shutil.get_terminal_size((100, 24)).columns, 110)
        lines = [self.format_usage().rstrip(), "", *textwrap.wrap(self.description, width), ""]
        for group, cmds in command_groups().items():
            lines.append(f"{group}:")
            for name, help_text in cmds:
                wrapped = textwrap.wrap(help_text, width - 26) or [""]
                lines.append(
                    f"  {name:22s}  {wrapped[0]}" if len(name) <= 22 else f"  {name}\n{'':26s}{wrapped[0]}"
                )
                lines += [f"{'':26s}{w}" for w in wrapped[1:]]
            lines.append("")
        lines += ["options:", f"  {'-h, --help':22s}  show this help and exit",
                  f"  {'--version':22s}  show deeper's version and exit", "", self.epilog or ""]  # fmt: skip
        return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()

    parser = _TopParser(
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

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:  # answered before any command module (and torch) is imported
        print(f"deeper {__version__}")
        return 0
    parser = build_parser()
    if not argv:  # `deeper` alone: what it can do
        parser.print_help()
        return 0
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
