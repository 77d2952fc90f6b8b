"""The converter benchmark script runs and reports both tools, fidelity and the ratio."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "convert_bench.py"


def test_convert_bench_prints_throughput_fidelity_and_ratio(capsys) -> None:
    spec = importlib.util.spec_from_file_location("convert_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--size", "64", "--n", "2", "--repeat", "1", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"defectkit convert \(COCO\+YOLO\): +[\d.]+ masks/s +fidelity COCO mean IoU 1\.0000, min 1\.0000; "
        r"YOLO \(fillPoly\) mean IoU 1\.0000, min 1\.0000",
        out,
    )
    assert re.search(
        r"ultralytics \(YOLO only\) +: +[\d.]+ masks/s +fidelity YOLO \(fillPoly\) mean IoU [01]\.\d+", out
    )
    assert re.search(r"throughput ratio defectkit / ultralytics: [\d.]+x", out)
    assert re.search(
        r"cpu time per mask \(median, all processes\): defectkit [\d.]+ ms, .* ratio [\d.]+x", out
    )
