"""Issue 16, classes 1 (full disk), 6 and 7: kills and full disks leave whole outputs or none, workers
die with their parent, finished runs are not overwritten silently."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_helpers import (
    alive,
    children,
    eval_argv,
    killed_run,
    one_line_error,
    tree_digest,
    write_scores,
)


@pytest.mark.parametrize("command", ["convert", "eval", "finetune-autoencoder"])
def test_full_disk_is_one_clear_line(command, tiny_disk, data, split, labels, tmp_path, run_cli) -> None:
    before = tree_digest(data)
    out = tiny_disk / "out"
    if command == "convert":
        argv = ["convert", data, "--split", split, "--to", "coco", "yolo", "voc", "-o", out]
    elif command == "eval":
        (tiny_disk / "filler").write_bytes(b"\0" * 80 * 1024)
        pred = write_scores(tmp_path / "pred", split)
        argv = eval_argv(split, labels, out, "--bootstrap", "0", m=pred)
    else:
        argv = ["finetune", "autoencoder", "--split", split, "-o", out, "--epochs", "1", "--image-size", "32"]
    code, _, err = run_cli(*argv)
    one_line_error(code, err, str(tiny_disk), "No space left on device", "disk full")
    assert tree_digest(data) == before
    if command == "convert":  # a half-written LABELS folder is marked, and readers refuse it
        assert (out / ".defectkit-incomplete").is_file()
    if command == "eval":
        assert not out.exists()
    assert not [p for p in tiny_disk.rglob("*.tmp")], "a temp file was left behind"


def test_eval_killed_over_an_old_report_leaves_it_whole(split, labels, tmp_path, run_cli) -> None:
    rep = tmp_path / "report"
    base = eval_argv(split, labels, rep, "--bootstrap", "0")
    old = write_scores(tmp_path / "old_model", split)
    assert run_cli(*base, "--pred", f"old_model={old}")[0] == 0
    before = tree_digest(rep)
    new = write_scores(tmp_path / "new_model", split)
    patch = (
        "from defectkit.eval import engine\n"
        "real = engine.atomic_write_text\n"
        "def write(path, text):\n"
        "    real(path, text)\n"
        "    if path.name == 'report.json':\n"
        "        kill()\n"
        "engine.atomic_write_text = write\n"
    )
    killed_run([*base, "--pred", f"new_model={new}"], patch)
    assert tree_digest(rep) == before  # report.json, .md, .html all still name old_model only
    assert [p for p in tmp_path.glob(".report.*")], "the killed run's temp folder should be there"
    code, _, err = run_cli(*base, "--pred", f"new_model={new}")
    assert code == 0, err
    assert not list(tmp_path.glob(".report.*")), "the next run removes the killed run's temp folder"
    for name in ("report.json", "report.md", "report.html"):
        text = (rep / name).read_text()
        assert "new_model" in text and "old_model" not in text, name


def test_convert_killed_over_another_split_is_marked_incomplete(data, split, tmp_path, run_cli) -> None:
    from defectkit.datasets.mvtec import scan_mvtec
    from defectkit.datasets.split import SplitConfig, make_split

    other = make_split(scan_mvtec(data), SplitConfig(defects_to_train=1, val_fraction=0.3, seed=7))
    other_split = other.save(tmp_path / "other.json")
    out = tmp_path / "labels"
    base = ["convert", data, "--to", "coco", "yolo", "-o", out]
    assert run_cli(*base, "--split", other_split)[0] == 0
    assert not (out / ".defectkit-incomplete").exists()
    patch = "from defectkit.converters import writers\nwriters.write_yolo = lambda *a, **k: kill()\n"
    killed_run([*base, "--split", split], patch)  # COCO of the new split written, YOLO still the old
    pred = write_scores(tmp_path / "m", split)
    code, _, err = run_cli(*eval_argv(split, out, tmp_path / "r", m=pred))
    one_line_error(code, err, str(out), "incomplete output (defectkit convert did not finish")
    code, _, err = run_cli(*base, "--split", split)
    assert code == 0, err
    assert not (out / ".defectkit-incomplete").exists()
    code, _, err = run_cli(*eval_argv(split, out, tmp_path / "r", m=pred))
    assert code == 0, err


def test_a_stage_killed_while_running_is_not_up_to_date(tmp_path) -> None:
    from defectkit.pipeline.stages import Stage, run_stages

    out = tmp_path / "out.txt"
    calls = []

    def work() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands for a kill halfway through a re-run
        out.write_text("done")

    stage = Stage("s", work, {"k": 1}, outputs=(out,))
    run_stages([stage], tmp_path / ".stages")
    with pytest.raises(KeyboardInterrupt):
        run_stages([stage], tmp_path / ".stages", from_stage="s")
    assert [r.status for r in run_stages([stage], tmp_path / ".stages")] == ["ran"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_convert_workers_die_with_a_killed_parent(data, split, tmp_path) -> None:
    """SIGKILL to ``convert --workers 2`` while its worker is busy: the worker ends within seconds."""
    import signal
    import time

    script = (
        "import time\n"
        "from defectkit.converters import worker\n"
        "worker.process_many = lambda jobs: time.sleep(300)  # a conversion that takes long\n"
        "from defectkit.cli import main\n"
        f"main(['convert', {str(data)!r}, '--split', {str(split)!r}, '--to', 'coco', "
        f"'-o', {str(tmp_path / 'out')!r}, '--workers', '2'])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    kids: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while not kids and time.monotonic() < deadline:
            time.sleep(0.2)
            kids = children(proc.pid)
        assert kids, "the convert worker never started"
        time.sleep(1.0)  # let the worker run its initializer
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(k) for k in kids), "a worker outlived its killed parent"
    finally:
        proc.kill()
        for k in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, signal.SIGKILL)


@pytest.mark.parametrize("model", ["autoencoder", "classifier", "sam"])
def test_finetune_over_a_finished_run_is_refused(model, split, labels, tmp_path, run_cli) -> None:
    run = tmp_path / "run"
    run.mkdir()
    kept = {name: f"old {name}".encode() for name in ("best.pt", "last.pt", "train_state.pt")}
    for name, data in kept.items():
        (run / name).write_bytes(data)
    if model == "sam":
        argv = [
            "finetune",
            "sam",
            "--coco",
            labels / "coco" / "train.json",
            "--model-type",
            "tiny",
            "-o",
            run,
        ]
    else:
        argv = ["finetune", model, "--split", split, "-o", run, "--epochs", "1", "--image-size", "32"]
    code, _, err = run_cli(*argv)
    one_line_error(code, err, str(run), "already holds a run", "--exist-ok")
    assert {name: (run / name).read_bytes() for name in kept} == kept


def test_exist_ok_starts_over(tmp_path) -> None:
    from defectkit.finetune.image.runs import open_run

    (tmp_path / "last.pt").write_bytes(b"old")
    assert open_run(tmp_path, "autoencoder", 1, resume=False, exist_ok=True) is None


def test_prediction_folder_of_an_interrupted_predict_is_refused(
    split, labels, tmp_path, run_cli, monkeypatch
) -> None:
    from defectkit import predictions
    from defectkit.datasets.split import load_split
    from defectkit.finetune.image import predict as image_predict

    pred = write_scores(tmp_path / "m", split)  # an older, whole prediction folder
    entries = load_split(split).subset("test")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands for a kill between image_scores.csv and prediction_meta.json

    monkeypatch.setattr(predictions, "atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        image_predict.write_predictions(pred, entries, [0.5] * len(entries), 0.5, {"kind": "classifier"})
    code, _, err = run_cli(*eval_argv(split, labels, tmp_path / "r", m=pred))
    one_line_error(code, err, str(pred), "incomplete output (defectkit predict did not finish")
    monkeypatch.undo()
    write_scores(pred, split)
    image_predict.write_predictions(pred, entries, [0.5] * len(entries), 0.5, {"kind": "classifier"})
    assert not (pred / ".defectkit-incomplete").exists()
