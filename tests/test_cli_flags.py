"""Global flags (-v, -q, --debug) work before and after the subcommand."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectkit.cli import build_parser

SYNTH = ("synth", "--n-train", "2", "--n-test-good", "1", "--n-test-per-defect", "1", "--size", "64")


@pytest.mark.parametrize(
    ("argv", "verbose", "quiet", "debug"),
    [
        (["-q", *SYNTH, "out"], 0, 1, False),
        ([*SYNTH, "out", "-q"], 0, 1, False),  # after the subcommand too
        ([*SYNTH, "out", "-qq"], 0, 2, False),
        (["-v", *SYNTH, "out", "--debug"], 1, 0, True),
        (["finetune", "sam", "--coco", "c.json", "-o", "r", "-vv"], 2, 0, False),  # nested subcommand
    ],
)
def test_global_flags_anywhere(argv: list[str], verbose: int, quiet: int, debug: bool) -> None:
    args = build_parser().parse_args(argv)
    assert (args.verbose, args.quiet, args.debug) == (verbose, quiet, debug)


def test_quiet_after_the_subcommand_silences_info(run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli(*SYNTH[:1], tmp_path / "d", *SYNTH[1:], "-q")
    assert code == 0 and out.strip().endswith("bottle") and err == ""
    code, out, err = run_cli(*SYNTH[:1], tmp_path / "e", *SYNTH[1:])
    assert code == 0 and "wrote 6 synthetic images" in err
