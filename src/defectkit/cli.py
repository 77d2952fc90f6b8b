"""The ``defectkit`` console script: one parser, subcommands registered by each subpackage.

Command modules (``<subpackage>/cli.py``) only build argparse parsers and, when run, turn the
parsed arguments into a typed config dataclass and call one library function. They import heavy
libraries (torch, ultralytics, segment_anything) inside their handlers, never at module level, so
``defectkit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from defectkit import __version__
from defectkit.errors import DefectkitError, InputError, OutputError, describe_os_error, os_error_in
from defectkit.runtime import setup_logging, setup_output  # noqa: F401  (setup_logging: re-exported)

log = logging.getLogger("defectkit")

#: Modules that contribute subcommands, each exposing ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "defectkit.datasets.cli",  # synth, describe, split
    "defectkit.datasets.paste_cli",  # paste
    "defectkit.converters.cli",  # convert
    "defectkit.finetune.cli",  # embed-text, finetune ..., predict ...
    "defectkit.eval.cli",  # eval
    "defectkit.annotate.cli",  # annotate ...
    "defectkit.pipeline.cli",  # demo, run
    "defectkit.weights.cli",  # weights list, weights fetch
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="defectkit",
        description="Industrial visual inspection on MVTec-AD-style data: convert masks, fine-tune "
        "YOLO-World / SAM / ResNet / AutoEncoder, and compare them in one report.",
    )
    parser.add_argument("--version", action="version", version=f"defectkit {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less log output, no progress bars")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _accept_global_flags(subparsers)
    state_defaults(parser)
    return parser


def _accept_global_flags(subparsers: argparse._SubParsersAction) -> None:
    """Let ``-v``, ``-q`` and ``--debug`` stand after the subcommand too (``defectkit synth out -q``).
    They are left unset unless typed there (SUPPRESS), so one typed before the command still counts;
    hidden from the subcommands' help, which stays about the subcommand."""
    for sub in dict.fromkeys(subparsers.choices.values()):
        known = sub._option_string_actions
        if "-v" not in known:
            sub.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if "-q" not in known:
            sub.add_argument("-q", "--quiet", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if "--debug" not in known:
            sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_global_flags(action)


#: actions whose default needs no words (flags are off unless given)
_NO_DEFAULT = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction,
               argparse._CountAction, argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)


def _show(value: object) -> str:
    if value is None:
        return "not set"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value) or "none"
    return str(value)


def state_defaults(parser: argparse.ArgumentParser) -> None:
    """Append ``(default: X)`` to the help of every option (of every subcommand) that does not state
    its default. Options left unset on purpose (``argparse.SUPPRESS``) take the default from the
    config dataclass the subcommand names with ``set_defaults(config_class="module:Class")``."""
    import dataclasses

    fields: dict[str, object] = {}
    spec = parser._defaults.get("config_class")
    if spec:
        module, _, name = spec.partition(":")
        cls = getattr(importlib.import_module(module), name)
        fields = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                state_defaults(sub)
            continue
        if not action.option_strings or isinstance(action, _NO_DEFAULT):
            continue
        if action.help is argparse.SUPPRESS or "default" in (action.help or "").lower():
            continue
        default = action.default
        if default is argparse.SUPPRESS:
            default = fields.get(action.dest)
            if isinstance(action, argparse.BooleanOptionalAction):
                default = "on" if default else "off"
        elif isinstance(action, argparse.BooleanOptionalAction):
            default = "on" if default else "off"
        action.help = f"{action.help} (default: {_show(default)})" if action.help else f"default: {_show(default)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failure, 2 bad input or an output that cannot be
    written, e.g. a full disk; 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    setup_output(args.verbose - args.quiet, quiet=bool(args.quiet))
    try:
        return int(args.func(args) or 0)
    except (InputError, OutputError) as exc:
        if args.debug:
            raise
        print(f"defectkit: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:  # a read or write the library did not name (full disk ...)
        err = os_error_in(exc)
        if args.debug or err is None:
            raise
        print(f"defectkit: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except DefectkitError as exc:
        if args.debug:
            raise
        print(f"defectkit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("defectkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
