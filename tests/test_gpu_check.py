"""benchmarks/gpu_check.py: on a CPU machine it says so and exits 0; --smoke-cpu runs every part."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU machine's answer")
def test_without_cuda_nothing_is_measured(capsys) -> None:
    assert _load().main([]) == 0
    assert capsys.readouterr().out == "no CUDA device: nothing measured\n"


@pytest.mark.slow
def test_smoke_run_reaches_every_part(capsys, tmp_path) -> None:
    assert _load().main(["--smoke-cpu", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for text in ("SAM tiny encoder", "fp32", "bf16", "decoder epoch, autocast + GradScaler", "YOLO-World",
                 "training loop with AMP", "torchrun 1-process DDP"):
        assert text in out
    assert "FAILED" not in out
