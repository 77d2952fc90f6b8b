"""One spelling per concept across the ``finetune`` / ``predict`` commands, old spellings kept as
hidden aliases (accepted, not shown in ``--help``). ``docs/cli_flags.md`` is the table of them.

Each model's CLI module calls :func:`add_hidden_aliases` on its parsers after adding its flags: every
flag of :data:`ALIASES` the parser has gets its old spellings as extra, hidden options that store
into the same place. Stdlib only.
"""

from __future__ import annotations

import argparse

#: flag -> old spellings it replaces (still accepted, hidden from --help), on every command
ALIASES: dict[str, tuple[str, ...]] = {
    "--image-size": ("--imgsz",),  # YOLO-World's (ultralytics') name
    "--batch-size": ("--batch",),  # YOLO-World's (ultralytics') name
}
#: aliases of one command only: ``finetune sam --checkpoint`` (the weights training starts from)
SAM_FINETUNE_ALIASES: dict[str, tuple[str, ...]] = {"--weights": ("--checkpoint",)}


def add_hidden_aliases(parser: argparse.ArgumentParser, extra: dict[str, tuple[str, ...]] | None = None) -> None:
    """Give every flag of ``parser`` listed in :data:`ALIASES` (or ``extra``) its old spellings as
    hidden options with the same ``dest``, type, nargs and choices (their default is SUPPRESS, so
    they never overwrite the flag's own default)."""
    table = {**ALIASES, **(extra or {})}
    for action in list(parser._actions):
        for flag in action.option_strings:
            for old in table.get(flag, ()):
                if old in parser._option_string_actions:
                    continue
                kwargs = {"dest": action.dest, "default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
                if isinstance(action, argparse._StoreAction):
                    kwargs.update(type=action.type, nargs=action.nargs, choices=action.choices,
                                  metavar=action.metavar)
                elif isinstance(action, argparse._StoreConstAction):
                    kwargs.update(action="store_const", const=action.const)
                else:  # not needed so far: refuse quietly rather than guess
                    continue
                parser.add_argument(old, **kwargs)
