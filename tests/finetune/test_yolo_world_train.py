"""`defectkit finetune yolo-world` / `predict yolo-world` end to end on tiny synthetic data, offline.

Models are yolov8n-worldv2.yaml (and yolov8n.yaml for the closed-set baseline) built from scratch,
64 px, 1-2 epochs. The text embeddings file holds *seeded random unit vectors*, not CLIP features
(no CLIP weights exist offline); YOLO-World only needs one fixed 512-d vector per class.
Every test runs under ``no_network``, which fails the test if anything tries to open a connection.
"""

from __future__ import annotations

import csv
import json
import re
import socket
import sys
from pathlib import Path

import pytest
import torch

from defectkit.finetune.yolo_world.text_embeddings import (
    TextEmbeddings,
    load_text_embeddings,
    save_text_embeddings,
)

NAMES = ("broken large", "broken small", "contamination")  # the converter's default natural names


def block_network(mp: pytest.MonkeyPatch) -> list[str]:
    """Make every socket connect / DNS lookup raise; returns the list the attempts are recorded in."""
    attempts: list[str] = []

    def refuse(what):
        def _refuse(*args, **kwargs):
            attempts.append(what)
            raise OSError(f"network blocked by test: {what}")

        return _refuse

    mp.setattr(socket.socket, "connect", refuse("socket.connect"))
    mp.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    mp.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    mp.setattr(socket, "create_connection", refuse("create_connection"))
    return attempts


@pytest.fixture
def no_network(monkeypatch):
    """The test fails if anything tried to open a connection or resolve a name."""
    attempts = block_network(monkeypatch)
    yield attempts
    assert attempts == [], f"network access attempted: {attempts}"


@pytest.fixture(scope="module")
def labels(tiny_dataset, tiny_split, tmp_path_factory) -> Path:
    """LABELS written by `defectkit convert` (yolo + coco) over the tiny split."""
    from defectkit.converters.convert import ConvertConfig, convert_dataset

    out = tmp_path_factory.mktemp("labels")
    convert_dataset(
        ConvertConfig(
            dataset=str(tiny_dataset), split=str(tiny_split), output=str(out), formats=("coco", "yolo")
        )
    )
    return out


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory) -> Path:
    """Seeded random unit vectors standing in for CLIP text features (see module docstring)."""
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(len(NAMES), 512, generator=g)
    path = tmp_path_factory.mktemp("emb") / "text_embeddings.pt"
    return save_text_embeddings(
        TextEmbeddings(NAMES, emb / emb.norm(dim=1, keepdim=True), model="random"), path
    )


def _train_args(labels: Path, out: Path, *extra: str | Path, epochs: int = 2) -> list[str | Path]:
    return [
        "finetune",
        "yolo-world",
        "--data",
        labels / "yolo" / "data.yaml",
        "--epochs",
        str(epochs),
        "--imgsz",
        "64",
        "--batch",
        "8",
        "--device",
        "cpu",
        "--workers",
        "0",
        "-o",
        out,
        "--set",
        "plots=False",
        *extra,
    ]


@pytest.fixture(scope="module")
def world_run(labels, embeddings, tmp_path_factory) -> Path:
    """One 2-epoch YOLO-World run shared by the checks below (made under the socket block)."""
    from defectkit.cli import main

    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("world")
    mp.chdir(base)  # anything ultralytics wrote relative to the cwd would show up here
    attempts = block_network(mp)
    before = {p for p in base.parent.rglob("*")}
    threads = torch.get_num_threads()
    try:
        args = _train_args(  # the demo's CPU recipe (--transpose, nbs = batch, flipud), as the guide shows it
            labels,
            base / "run",
            "--model",
            "yolov8n-worldv2.yaml",
            "--text-embeddings",
            embeddings,
            "--transpose",
            "0.5",
            "--set",
            "nbs=8",
            "flipud=0.5",
        )
        code = main([str(a) for a in args])
    finally:
        mp.undo()
    assert code == 0 and attempts == []
    assert torch.get_num_threads() == threads  # ultralytics' select_device would leave cpu_count - 1
    created = {p for p in base.parent.rglob("*")} - before
    outside = [p for p in created if base / "run" not in p.parents and p != base / "run"]
    # only ultralytics' label caches (next to the labels) may appear outside RUN_DIR
    assert all(p.suffix == ".cache" for p in outside if p.is_file()), outside
    return base / "run"


def test_run_dir_holds_checkpoints_config_and_metrics(world_run, embeddings):
    for name in (
        "config.json",
        "args.yaml",
        "metrics.csv",
        "results.csv",
        "weights/best.pt",
        "weights/last.pt",
    ):
        assert (world_run / name).is_file(), name
    assert sorted(p.name for p in world_run.parent.iterdir()) == ["run"]  # nothing beside RUN_DIR (cwd)
    record = json.loads((world_run / "config.json").read_text())
    assert record["config"]["model"] == "yolov8n-worldv2.yaml"
    assert record["config"]["text_embeddings_info"]["names"] == list(NAMES)
    assert record["config"]["transpose"] == 0.5
    assert record["config"]["overrides"] == {"plots": False, "nbs": 8, "flipud": 0.5}  # every --set kept
    args = (world_run / "args.yaml").read_text()
    assert "nbs: 8" in args and "flipud: 0.5" in args
    rows = list(csv.DictReader((world_run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # it learned to place boxes in two epochs (the class term of two tiny epochs is noise: from scratch
    # it starts from random contrastive logits around the class prior)
    loss = [sum(float(r[k]) for k in ("train/box_loss", "train/dfl_loss")) for r in rows]
    assert loss[1] < 0.9 * loss[0]


def test_best_pt_predicts_with_yoloworld_and_no_clip(world_run, embeddings, monkeypatch, no_network):
    from ultralytics import YOLOWorld

    monkeypatch.setitem(sys.modules, "clip", None)  # any `import clip` now fails
    model = YOLOWorld(str(world_run / "weights" / "best.pt"))
    assert model.model.names == dict(enumerate(NAMES))
    feats = model.model.txt_feats
    assert feats.shape == (1, 3, 512)
    assert torch.allclose(feats[0].float(), load_text_embeddings(embeddings).embeddings, atol=1e-6)
    results = model.predict(torch.rand(1, 3, 64, 64), imgsz=64, conf=0.0, verbose=False)
    boxes = results[0].boxes
    assert len(boxes) > 0 and set(boxes.cls.int().tolist()) <= {0, 1, 2}


def test_predict_writes_coco_results_scores_and_meta(
    world_run, labels, tiny_split, run_cli, tmp_path, no_network
):
    from pycocotools.coco import COCO

    from defectkit.datasets.split import load_split

    out = tmp_path / "pred"
    code, _, err = run_cli(
        "predict",
        "yolo-world",
        "--weights",
        world_run / "weights" / "best.pt",
        "--split",
        tiny_split,
        "--labels",
        labels,
        "--conf",
        "0",
        "--max-det",
        "5",
        "-o",
        out,
    )
    assert code == 0, err
    manifest = load_split(tiny_split)
    ids = {e.name: i + 1 for i, e in enumerate(manifest.entries)}
    wanted = sorted(e.name for e in manifest.entries if e.split in ("val", "test"))
    dets = json.loads((out / "detections.json").read_text())
    assert {d["image_id"] for d in dets} == {ids[n] for n in wanted}  # conf 0: every image has boxes
    assert {d["category_id"] for d in dets} <= {1, 2, 3}
    gt = COCO(str(labels / "coco" / "test.json"))
    test_ids = set(gt.getImgIds())
    res = gt.loadRes([d for d in dets if d["image_id"] in test_ids])  # valid COCO results for the GT file
    assert len(res.getAnnIds()) == sum(d["image_id"] in test_ids for d in dets)
    rows = list(csv.DictReader((out / "image_scores.csv").open()))
    assert [r["image"] for r in rows] == wanted
    for r in rows:
        best = max(d["score"] for d in dets if d["image_id"] == ids[r["image"]])
        assert float(r["score"]) == pytest.approx(best, abs=1e-5)
    meta = json.loads((out / "prediction_meta.json").read_text())
    assert meta["kind"] == "detector" and meta["model"] == "YOLO-World" and meta["splits"] == ["val", "test"]
    assert meta["config"]["imgsz"] == 64  # training size by default


def test_resume_continues_a_killed_run(labels, embeddings, run_cli, tmp_path, no_network):
    from defectkit.finetune.yolo_world.train import YoloFinetuneConfig, finetune_yolo

    def kill_after_first_epoch(trainer):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    cfg = YoloFinetuneConfig(
        data=labels / "yolo" / "data.yaml",
        model="yolov8n-worldv2.yaml",
        output=run,
        text_embeddings=embeddings,
        epochs=2,
        imgsz=64,
        batch=8,
        device="cpu",
        workers=0,
        overrides={"plots": False},
    )
    with pytest.raises(KeyboardInterrupt):
        finetune_yolo(cfg, callbacks={"on_fit_epoch_end": [kill_after_first_epoch]})
    assert len(list(csv.DictReader((run / "metrics.csv").open()))) == 1
    code, _, err = run_cli(
        "finetune",
        "yolo-world",
        "-o",
        run,
        "--data",
        labels / "yolo" / "data.yaml",
        "--model",
        "yolov8n-worldv2.yaml",
        "--text-embeddings",
        embeddings,
    )
    assert code == 2 and "--resume" in err  # a new run may not overwrite it
    code, out, err = run_cli("finetune", "yolo-world", "--resume", run)
    assert code == 0, err
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert (run / "weights" / "best.pt").is_file()
    code, _, err = run_cli("finetune", "yolo-world", "--resume", run)
    assert code == 2 and "finished" in err


def test_closed_set_baseline_trains_and_predicts(labels, tiny_split, run_cli, tmp_path, no_network):
    run = tmp_path / "yolo"
    code, _, err = run_cli(*_train_args(labels, run, "--model", "yolov8n.yaml", epochs=1))
    assert code == 0, err
    ckpt = torch.load(run / "weights" / "best.pt", map_location="cpu", weights_only=False)
    assert type(ckpt["model"]).__name__ == "DetectionModel" and ckpt["model"].names == dict(enumerate(NAMES))
    code, _, err = run_cli(
        "predict",
        "yolo-world",
        "--weights",
        run / "weights" / "best.pt",
        "--split",
        tiny_split,
        "--labels",
        labels,
        "--splits",
        "test",
        "-o",
        tmp_path / "pred",
    )
    assert code == 0, err
    assert json.loads((tmp_path / "pred" / "prediction_meta.json").read_text())["model"] == "YOLO"


@pytest.mark.parametrize(
    ("extra", "msg"),
    [
        (
            ["--model", "missing/yolov8s-worldv2.pt", "--text-embeddings", "EMB"],
            "yolov8s-worldv2.pt: weights file not found",
        ),
        (["--model", "yolov8n-worldv2.yaml"], "give --text-embeddings FILE"),
        (
            ["--model", "yolov8n-worldv2.yaml", "--text-embeddings", "SHORT"],
            "no embedding for ['contamination']",
        ),
        (["--model", "yolov8n.yaml", "--set", "data=x.yaml"], "--set data"),
        (["--model", "yolov8n.yaml", "--set", "no_such_arg=1"], "no_such_arg"),
    ],
)
def test_finetune_bad_input_exit_2(labels, embeddings, run_cli, tmp_path, no_network, extra, msg):
    short = save_text_embeddings(TextEmbeddings(NAMES[:2], torch.eye(2, 512)), tmp_path / "short.pt")
    extra = [{"EMB": str(embeddings), "SHORT": str(short)}.get(x, x) for x in extra]
    code, _, err = run_cli(*_train_args(labels, tmp_path / "run", *extra))
    assert code == 2 and msg in err
    assert not (tmp_path / "run" / "weights").exists()


def test_finetune_refuses_a_training_set_without_boxes(good_only_labels, run_cli, tmp_path, no_network):
    # the default split keeps every defect image in test: a detector would learn background only
    code, _, err = run_cli(*_train_args(good_only_labels, tmp_path / "run", "--model", "yolov8n.yaml"))
    labels = good_only_labels / "yolo" / "labels" / "train"
    assert code == 2 and f"no training image has a labelled defect ({labels}: holds no boxes)" in err
    assert "--defects-to-train K" in err and not (tmp_path / "run").exists()


def test_train_label_dir_follows_ultralytics_images_to_labels_rule(tmp_path):
    from defectkit.finetune.yolo_world.train import train_label_dir

    (tmp_path / "ds" / "images" / "train").mkdir(parents=True)
    data = tmp_path / "data.yaml"
    labels = tmp_path / "ds" / "labels" / "train"
    for body, want in [
        (f"path: {tmp_path / 'ds'}\ntrain: images/train\n", labels),  # what `defectkit convert` writes
        (f"path: {tmp_path}\ntrain: ds/images/train\n", labels),
        ("train: ds/images/train\n", labels),  # no path: the data.yaml's folder
        (f"train: {tmp_path / 'ds' / 'images' / 'train'}\n", labels),
        ("path: ds\ntrain: images/train\n", None),  # relative path: ultralytics' datasets folder, not checked
        (f"path: {tmp_path / 'ds'}\ntrain: [images/train]\n", None),  # a list: not checked here
        (f"path: {tmp_path / 'ds'}\ntrain: images/missing\n", None),  # ultralytics reports a missing folder
        ("train: [unclosed\n", None),  # broken yaml: reported by the names check
    ]:
        data.write_text(body)
        assert train_label_dir(data) == want, body


def test_finetune_from_a_world_checkpoint_file(world_run, labels, embeddings, run_cli, tmp_path, no_network):
    weights = world_run / "weights" / "best.pt"  # a .pt is recognised as YOLO-World by its content
    code, _, err = run_cli(*_train_args(labels, tmp_path / "bad", "--model", weights))
    assert code == 2 and "is YOLO-World: give --text-embeddings FILE" in err
    run = tmp_path / "ft"
    code, _, err = run_cli(
        *_train_args(labels, run, "--model", weights, "--text-embeddings", embeddings, epochs=1)
    )
    assert code == 0, err
    ckpt = torch.load(run / "weights" / "best.pt", map_location="cpu", weights_only=False)
    assert type(ckpt["model"]).__name__ == "WorldModel"
    assert json.loads((run / "config.json").read_text())["config"]["model"] == str(weights)


def test_ultralytics_imported_offline_with_private_settings(tmp_path):
    """A fresh process: defectkit's import sets YOLO_OFFLINE and keeps ultralytics' settings out of $HOME/.config."""
    import os
    import subprocess

    env = {
        k: v for k, v in os.environ.items() if k not in {"YOLO_CONFIG_DIR", "YOLO_OFFLINE", "XDG_CACHE_HOME"}
    }
    env["HOME"] = str(tmp_path)
    code = (
        "from defectkit.finetune.yolo_world.env import import_ultralytics; import_ultralytics(); "
        "from ultralytics import utils; print(utils.USER_CONFIG_DIR); print(utils.ONLINE)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    config_dir, online = out.stdout.split()[-2:]
    assert Path(config_dir).is_relative_to(tmp_path / ".cache" / "defectkit") and online == "False"
    assert not (tmp_path / ".config").exists()


def test_offline_guards_skip_amp_download_and_restore(monkeypatch):
    import ultralytics.data.utils as ul_data_utils
    import ultralytics.engine.trainer as ul_trainer
    from ultralytics import utils as ul_utils

    from defectkit.finetune.yolo_world.trainer import offline_guards

    calls = []
    monkeypatch.setattr(ul_trainer, "check_amp", lambda model: calls.append(model) or False)
    monkeypatch.setattr(ul_utils, "WEIGHTS_DIR", Path("/nonexistent/weights"))
    original_font = ul_data_utils.check_font
    gpu_like = torch.nn.Linear(1, 1, device="meta")  # neither cpu nor mps: the GPU path
    with offline_guards():
        assert ul_trainer.check_amp(gpu_like) is True and calls == []  # no yolo26n.pt: skipped, not fetched
        assert ul_trainer.check_amp(torch.nn.Linear(1, 1)) is False  # CPU: AMP off, as ultralytics does
        assert ul_data_utils.check_font is not original_font
    assert ul_data_utils.check_font is original_font and ul_trainer.check_amp(gpu_like) is False


def test_training_with_plots_on_needs_no_network(labels, embeddings, tmp_path, no_network, capsys):
    """The demo trains with plots on: ultralytics' plotting keeps its own check_font, which would
    download Arial.ttf; defectkit hands it a local font (matplotlib's DejaVu Sans if no Arial).
    Not on a terminal, each epoch is one INFO line (losses, val mAP50) as the classifier logs."""
    from defectkit.cli import main
    from defectkit.finetune.yolo_world.env import import_ultralytics

    import_ultralytics()  # offline first: a plain `import ultralytics` probes DNS
    from ultralytics.utils import USER_CONFIG_DIR

    assert not (USER_CONFIG_DIR / "Arial.ttf").exists()  # else nothing here would try to download it
    args = [a for a in _train_args(labels, tmp_path / "run", epochs=1) if a not in ("--set", "plots=False")]
    args += ["--model", "yolov8n-worldv2.yaml", "--text-embeddings", embeddings]
    assert main([str(a) for a in args]) == 0
    assert (tmp_path / "run" / "results.png").is_file()  # plots were drawn, with labels in a local font
    assert list((tmp_path / "run").glob("train_batch*.jpg"))
    err = capsys.readouterr().err
    assert re.search(
        r"I defectkit\.finetune\.yolo_world\.trainer: epoch 1/1: box_loss [\d.]+ cls_loss [\d.]+ dfl_loss [\d.]+ "
        r"val mAP50 [\d.]+ mAP50-95 [\d.]+",
        err,
    ), err


def test_on_a_terminal_ultralytics_shows_its_own_progress(labels, tmp_path, no_network, capfd, monkeypatch):
    import logging

    import defectkit.progress
    from defectkit.cli import main

    monkeypatch.setattr(defectkit.progress, "progress_enabled", lambda: True)  # as on a TTY
    records: list[logging.LogRecord] = []
    seen = logging.Handler()
    seen.emit = records.append  # ultralytics' own handler may hold an earlier test's captured stream
    logging.getLogger("ultralytics").addHandler(seen)
    try:
        args = _train_args(labels, tmp_path / "run", epochs=1)
        assert main([str(a) for a in [*args, "--model", "yolov8n.yaml"]]) == 0
    finally:
        logging.getLogger("ultralytics").removeHandler(seen)
    out, err = capfd.readouterr()
    ul = [r.getMessage() for r in records]  # ultralytics' own epoch header (its logger at INFO for the run)
    assert any("Epoch" in m and "box_loss" in m for m in ul), ul
    assert "1/1" in out + err
    assert "epoch 1/1:" not in err  # no duplicate of it in our log line
    assert logging.getLogger("ultralytics").getEffectiveLevel() >= logging.WARNING  # restored


@pytest.mark.parametrize("quiet", [True, False])
def test_albumentations_import_asks_the_package_index_only_when_not_quieted(tmp_path, quiet):
    import os
    import subprocess

    code = (
        "import socket, time\n"
        "tries = []\n"
        "def refuse(*a, **k):\n"
        "    tries.append(1); raise OSError('blocked')\n"
        "socket.socket.connect = socket.getaddrinfo = socket.create_connection = refuse\n"
        + ("from defectkit.finetune.yolo_world.env import quiet_albumentations; quiet_albumentations()\n" if quiet else "")
        + "import warnings; warnings.simplefilter('ignore')\n"
        "import albumentations\n"
        "time.sleep(0.5)\n"
        "print(len(tries))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    attempts = int(out.stdout.split()[-1])
    assert (attempts == 0) if quiet else (attempts > 0)
