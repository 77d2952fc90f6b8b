"""`--help` answers: every option of every subcommand states its default."""

from __future__ import annotations

import argparse

import pytest

from defectkit.cli import _NO_DEFAULT, build_parser


def _parsers(parser: argparse.ArgumentParser, name: str = "defectkit"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_states_its_default() -> None:
    missing = [
        f"{name} {action.option_strings[-1]}"
        for name, parser in _parsers(build_parser())
        for action in parser._actions
        if action.option_strings and not isinstance(action, _NO_DEFAULT) and action.help is not argparse.SUPPRESS
        and "default" not in (action.help or "").lower()
    ]
    assert missing == []


def test_help_text_holds_the_defaults(capsys) -> None:
    from defectkit.cli import main

    for argv, expect in [
        (["finetune", "yolo-world"], ["default: 1000", "default: 640"]),
        (["predict", "sam"], ["default tiny"]),
        (["finetune", "classifier"], ["--lr LR default: 0.001", "--no-augment default: on"]),  # ClassifierConfig
        (["weights", "fetch"], ["default: $DEFECTKIT_HOME/weights"]),
        (["run"], ["--set device=cpu"]),
    ]:
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        out = capsys.readouterr().out
        for text in expect:
            assert text in " ".join(out.split()), (argv, text)
