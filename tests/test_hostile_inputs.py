"""Hostile inputs and faults driven through the CLI (issue 16): each ends in exit code 2 (or 0 where
the result is right) with one line naming the file and the problem, no traceback, inputs unchanged
and no partial output."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from defectkit.datasets.synth import SynthConfig, generate_synthetic

SMALL = SynthConfig(category="bottle", n_train=6, n_test_good=3, n_test_per_defect=3, size=32, seed=0)


@pytest.fixture(autouse=True)
def plain_pil_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """An earlier test may have imported ultralytics, which patches ``PIL.Image.open`` process-wide
    (``defectkit`` undoes it in ``import_ultralytics``; a test importing ultralytics directly does not)."""
    from PIL import Image

    original = getattr(sys.modules.get("ultralytics.utils.patches"), "_image_open", None)
    if original is not None:
        monkeypatch.setattr(Image, "open", original)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32 px synthetic category (read-only: copy it before changing anything)."""
    return generate_synthetic(tmp_path_factory.mktemp("hostile_data"), SMALL)


@pytest.fixture(scope="module")
def split(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from defectkit.datasets.mvtec import scan_mvtec
    from defectkit.datasets.split import SplitConfig, make_split

    manifest = make_split(scan_mvtec(data), SplitConfig(defects_to_train=2, val_fraction=0.5, seed=0))
    return manifest.save(tmp_path_factory.mktemp("hostile_split") / "split.json")


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root`` (to show inputs are unchanged)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_line_error(code: int, err: str, *needles: str, expect: int = 2) -> None:
    """Exit ``expect``; stderr's last line is ``defectkit: error: ...`` naming every needle; no traceback."""
    assert code == expect, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("defectkit: error: "), err
    for needle in needles:
        assert needle in last, (needle, last)


def cli_subprocess(
    *argv: str | Path, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m defectkit ARGV`` in a fresh process (inherits PYTHONPATH)."""
    return subprocess.run(
        [sys.executable, "-m", "defectkit", *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


# --- class 2: no code runs from a file handed over -------------------------------------------------


class _RunsCode:
    """Unpickling this calls ``exec``, which writes the marker file: what a crafted .pt does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.fixture
def crafted_pt(tmp_path: Path) -> tuple[Path, Path]:
    import torch

    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pt"
    torch.save({"format": "defectkit-image/1", "model": _RunsCode(marker)}, path)
    assert not marker.exists()
    return path, marker


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "classifier", "--weights", "{pt}", "--split", "{split}", "-o", "{out}"],
        ["predict", "autoencoder", "--weights", "{pt}", "--split", "{split}", "-o", "{out}"],
        [
            "finetune",
            "classifier",
            "--weights",
            "{pt}",
            "--split",
            "{split}",
            "-o",
            "{out}",
            "--epochs",
            "1",
            "--image-size",
            "32",
        ],
    ],
    ids=["predict-classifier", "predict-autoencoder", "finetune-classifier-weights"],
)
def test_crafted_checkpoint_runs_no_code(argv, crafted_pt, split: Path, tmp_path: Path, run_cli) -> None:
    pt, marker = crafted_pt
    subs = {"{pt}": str(pt), "{split}": str(split), "{out}": str(tmp_path / "out")}
    code, _, err = run_cli(*[subs.get(a, a) for a in argv])
    one_line_error(code, err, str(pt), "not a plain weights file")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_own_checkpoints_hold_plain_types_only(tmp_path: Path) -> None:
    """A defectkit checkpoint (with its RNG state) loads with ``weights_only=True`` and restores the
    numpy RNG exactly; one written before (numpy state as an array) still loads, safely."""
    import numpy as np
    import torch

    from defectkit.finetune.common import load_checkpoint, rng_state, set_rng_state

    np.random.seed(5)
    torch.save({"rng": rng_state()}, tmp_path / "new.pt")
    expected = np.random.rand(3)
    set_rng_state(torch.load(tmp_path / "new.pt", weights_only=True)["rng"])
    assert np.array_equal(np.random.rand(3), expected)

    np.random.seed(6)
    legacy = {**rng_state(), "numpy": np.random.get_state()}
    torch.save({"rng": legacy}, tmp_path / "old.pt")
    expected = np.random.rand(3)
    set_rng_state(load_checkpoint(tmp_path / "old.pt")["rng"])
    assert np.array_equal(np.random.rand(3), expected)


def test_ultralytics_kind_is_sniffed_without_unpickling(crafted_pt, tmp_path: Path) -> None:
    import torch

    from defectkit.errors import InputError
    from defectkit.finetune.common import pickled_globals
    from defectkit.finetune.yolo_world import checkpoint_is_world

    pt, marker = crafted_pt
    assert pickled_globals(pt) & {"builtins.exec", "__builtin__.exec"}  # protocol 2 names it __builtin__
    with pytest.raises(InputError, match="not an ultralytics checkpoint"):
        checkpoint_is_world(pt)
    assert not marker.exists()
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(InputError, match="text.pt: not a torch checkpoint"):
        checkpoint_is_world(tmp_path / "text.pt")
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "lin.pt")
    assert "torch.nn.modules.linear.Linear" in pickled_globals(tmp_path / "lin.pt")


# --- class 1: no traceback for a non-UTF-8 file, a bad output path, a full disk ---------------------


@pytest.fixture(scope="module")
def labels(data: Path, split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from defectkit.converters.convert import ConvertConfig, convert_dataset

    out = tmp_path_factory.mktemp("hostile_labels")
    convert_dataset(ConvertConfig(dataset=str(data), split=str(split), output=str(out), formats=("coco",)))
    return out


def write_scores(folder: Path, split: Path, score=lambda e: float(e.label)) -> Path:
    """A classifier prediction folder (image_scores.csv + prediction_meta.json) over val and test."""
    from defectkit.datasets.split import load_split

    manifest = load_split(split)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["image,split,defect_type,label,score"] + [
        f"{e.name},{e.split},{e.defect_type},{e.label},{score(e)!r}"
        for e in manifest.entries
        if e.split in ("val", "test")
    ]
    (folder / "image_scores.csv").write_text("\n".join(rows) + "\n")
    (folder / "prediction_meta.json").write_text(json.dumps({"kind": "classifier", "model": folder.name}))
    return folder


def eval_argv(split: Path, labels: Path, out: Path, *extra: str | Path, **preds: Path) -> list:
    """``eval`` arguments with one ``--pred NAME=DIR`` per keyword."""
    pairs = [x for name, folder in preds.items() for x in ("--pred", f"{name}={folder}")]
    return ["eval", "--split", split, "--labels", labels, "-o", out, *pairs, *extra]


NOT_UTF8 = b'{"a": "caf\xe9"}\n'


@pytest.mark.parametrize(
    "case",
    [
        "split-manifest",
        "config-yaml",
        "pipeline-yaml",
        "boxes-json",
        "image-scores",
        "coco-labels",
        "detections",
    ],
)
def test_non_utf8_file_is_one_clear_line(case, data, split, labels, tmp_path, run_cli) -> None:
    bad = tmp_path / "bad"
    if case == "split-manifest":
        bad = tmp_path / "split.json"
        argv = ["convert", data, "--split", bad, "--to", "coco", "-o", tmp_path / "out"]
    elif case == "config-yaml":
        bad = tmp_path / "cls.yaml"
        argv = ["finetune", "classifier", "--config", bad, "--split", split, "-o", tmp_path / "out"]
    elif case == "pipeline-yaml":
        bad = tmp_path / "PIPELINE.yaml"
        argv = ["run", bad]
    elif case == "boxes-json":
        bad = tmp_path / "boxes.json"
        argv = [
            "annotate",
            "auto",
            "--images",
            data,
            "--boxes",
            bad,
            "--sam",
            tmp_path / "sam.pt",
            "-o",
            tmp_path / "o",
        ]
    else:
        pred = write_scores(tmp_path / "pred", split)
        lab = tmp_path / "labels"
        shutil.copytree(labels, lab)
        bad = {
            "image-scores": pred / "image_scores.csv",
            "coco-labels": lab / "coco" / "test.json",
            "detections": pred / "detections.json",
        }[case]
        argv = eval_argv(split, lab, tmp_path / "report", m=pred)
    bad.write_bytes(NOT_UTF8)
    code, _, err = run_cli(*argv)
    one_line_error(code, err, str(bad), "not UTF-8")
    assert bad.read_bytes() == NOT_UTF8
    assert not (tmp_path / "report").exists() and not (tmp_path / "out").exists()


def test_pipeline_sections_must_be_mappings(tmp_path: Path, run_cli) -> None:
    cases = {
        "scalar.yaml": ("output: o\ndataset: d\nclassifier: 5\n", "section 'classifier' must be a mapping"),
        "empty.yaml": ("", "pipeline file is empty"),
        "no_output.yaml": ("dataset: d\n", "missing key(s) ['output']"),
        "bad_yaml.yaml": ("output: [o\n", "not valid YAML"),
        "list.yaml": ("- a\n", "expected a mapping of sections"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        code, _, err = run_cli("run", tmp_path / name)
        one_line_error(code, err, name, message)


def test_output_paths_that_cannot_be_written(data: Path, tmp_path: Path, run_cli) -> None:
    (tmp_path / "folder").mkdir()
    code, _, err = run_cli("split", data, "-o", tmp_path / "folder")
    one_line_error(code, err, "folder", "is a folder")
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli("split", data, "-o", tmp_path / "file" / "split.json")
    one_line_error(code, err, "file", "exists and is not a folder")
    code, _, err = run_cli("split", data, "-o", "/proc/split.json")
    one_line_error(code, err, "/proc/split.json", "cannot write here")
    (tmp_path / "P.yaml").write_text(f"output: {tmp_path / 'file' / 'out'}\ndataset: {data}\n")
    code, _, err = run_cli("run", tmp_path / "P.yaml")
    one_line_error(code, err, "file", "not a folder")
    assert (tmp_path / "file").read_text() == "x"


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 96 KiB tmpfs (root only): every write beyond that fails with ENOSPC."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


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


# --- class 5: a threshold that separates nothing is not scored as a perfect recall -----------------


def test_constant_scores_get_no_threshold_and_no_recall(split, labels, tmp_path, run_cli) -> None:
    const = write_scores(tmp_path / "const", split, score=lambda e: 0.0)
    nodet = write_scores(tmp_path / "nodet", split)
    (nodet / "image_scores.csv").unlink()
    (nodet / "detections.json").write_text("[]")
    (nodet / "prediction_meta.json").write_text(json.dumps({"kind": "detector", "model": "nodet"}))
    good = write_scores(tmp_path / "good", split)
    argv = eval_argv(split, labels, tmp_path / "rep", "--bootstrap", "20")
    code, out, err = run_cli(
        *argv, "--pred", f"const={const}", "--pred", f"nodet={nodet}", "--pred", f"good={good}"
    )
    assert code == 0, err
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    by_name = {m["name"]: m for m in report["models"]}
    for name in ("const", "nodet"):
        m = by_name[name]
        assert m["threshold"]["usable"] is False and m["threshold"]["value"] is None
        assert "no usable threshold: all val scores equal" in m["threshold"]["note"]
        im = m["image"]
        assert im["accuracy"] is None and im["defect_recall"] is None and im["f1"] is None
        assert im["confusion"] is None and im["auroc"] == 0.5
        assert all(v is None for v in im["per_type_recall"].values())
        assert not [w for w in m["worst_cases"] if w["reason"] in ("false alarm", "missed defect")]
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert "no usable threshold" in row and "1.000" not in row
    assert by_name["good"]["threshold"]["usable"] is True and by_name["good"]["image"]["defect_recall"] == 1.0
    for name in ("report.md", "report.html", "per_image.csv"):
        assert "no usable threshold" in (tmp_path / "rep" / name).read_text() or name == "per_image.csv"


def test_unknown_category_on_val_is_refused(split, labels, tmp_path, run_cli) -> None:
    from defectkit.datasets.split import load_split
    from defectkit.eval.loaders import global_ids

    manifest = load_split(split)
    ids = global_ids(manifest)
    val = next(e for e in manifest.subset("val"))
    pred = tmp_path / "det"
    pred.mkdir()
    det = {"image_id": ids[val.name], "category_id": 99, "bbox": [1, 1, 4, 4], "score": 0.5}
    (pred / "detections.json").write_text(json.dumps([det]))
    (pred / "prediction_meta.json").write_text(json.dumps({"kind": "detector"}))
    code, _, err = run_cli(*eval_argv(split, labels, tmp_path / "r", d=pred))
    one_line_error(code, err, "detections.json", "category_id [99]")
    assert not (tmp_path / "r" / "report.json").exists()


# --- class 3: a changed dataset re-runs what depends on it -----------------------------------------


def test_edited_or_deleted_data_reruns_the_chain(data, tmp_path, run_cli, monkeypatch) -> None:
    """The model stages are replaced by stand-ins that write their outputs (the runner is under test,
    not the models); describe, split and convert run for real."""
    from defectkit.pipeline import steps

    def fake(name: str, rel: str):
        def run(cfg) -> None:
            out = cfg.out / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text('{"models": []}' if name == "eval" else name)

        return run

    monkeypatch.setattr(steps, "autoencoder_train", fake("train", "runs/autoencoder/best.pt"))
    monkeypatch.setattr(
        steps, "autoencoder_predict", fake("predict", "runs/autoencoder/predictions/image_scores.csv")
    )
    monkeypatch.setattr(steps, "evaluate", fake("eval", "report/report.json"))
    ds = tmp_path / "bottle"
    shutil.copytree(data, ds)
    p = tmp_path / "pipe.yaml"
    p.write_text(
        f"output: out\ndataset: {ds}\nsplit: {{defects_to_train: 1}}\nconvert: {{formats: [coco]}}\n"
        "autoencoder: {epochs: 1, image_size: 32}\n"
    )
    code, out, err = run_cli("run", p)
    assert code == 0 and "describe ran" in out and "eval ran" in out, err
    code, out, _ = run_cli("run", p)
    assert code == 0 and " ran" not in out and "split skipped" in out
    mask = next((ds / "ground_truth").rglob("*_mask.png"))
    mask.write_bytes(mask.read_bytes() + b"\0")  # an edited mask (same pixels, other bytes)
    code, out, _ = run_cli("run", p)
    assert code == 0
    for stage in ("describe", "split", "convert", "autoencoder_train", "autoencoder_predict", "eval"):
        assert f"{stage} ran" in out, (stage, out)
    code, out, _ = run_cli("run", p)
    assert " ran" not in out
    image = sorted((ds / "test" / "good").iterdir())[0]
    image.unlink()
    code, out, _ = run_cli("run", p)
    assert code == 0 and "split ran" in out and "eval ran" in out
    manifest = json.loads((tmp_path / "out" / "split.json").read_text())
    assert not [e for e in manifest["images"] if e["image"] == f"test/good/{image.name}"]


# --- class 4: nothing accepted silently -------------------------------------------------------------


@pytest.fixture
def data_copy(data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(data, tmp_path / "bottle"))


def test_duplicate_stems_are_refused_by_every_reader(data_copy, split, tmp_path, run_cli) -> None:
    from PIL import Image

    Image.open(data_copy / "test" / "good" / "000.png").convert("RGB").save(
        data_copy / "test" / "good" / "000.jpg"
    )
    before = tree_digest(data_copy)
    for argv in (
        ["describe", data_copy],
        ["split", data_copy, "-o", tmp_path / "s.json"],
    ):
        code, _, err = run_cli(*argv)
        one_line_error(code, err, "000.", "same name stem as 000.", "rename or remove one")
    assert not (tmp_path / "s.json").exists()
    assert tree_digest(data_copy) == before


def test_hand_duplicated_manifest_entry_is_refused(data, split, tmp_path, run_cli) -> None:
    raw = json.loads(split.read_text())
    raw["images"].append(raw["images"][-1])
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps(raw))
    code, _, err = run_cli("convert", data, "--split", dup, "--to", "coco", "-o", tmp_path / "out")
    one_line_error(code, err, str(dup), "listed more than once")
    assert not (tmp_path / "out").exists()


def test_zero_one_masks_read_as_binary(data, data_copy, tmp_path, run_cli) -> None:
    import numpy as np
    from PIL import Image

    masks = sorted((data_copy / "ground_truth").rglob("*.png"))
    for m in masks:
        Image.fromarray((np.asarray(Image.open(m)) > 127).astype(np.uint8)).save(m)
    code, out, err = run_cli("describe", data_copy)
    assert code == 0 and f"{len(masks)} mask(s) hold values 0/1 instead of 0/255" in err
    assert "empty mask" not in err
    coco = {}
    for name, ds in (("orig", data), ("zero_one", data_copy)):
        assert run_cli("split", ds, "-o", tmp_path / f"{name}.json")[0] == 0
        code, _, err = run_cli(
            "convert", ds, "--split", tmp_path / f"{name}.json", "--to", "coco", "-o", tmp_path / name
        )
        assert code == 0 and "not binary" not in err, err
        coco[name] = json.loads((tmp_path / name / "coco" / "test.json").read_text())["annotations"]
    assert coco["orig"] and [a["area"] for a in coco["zero_one"]] == [a["area"] for a in coco["orig"]]


def test_true_is_not_a_number(split, tmp_path, run_cli) -> None:
    (tmp_path / "ae.yaml").write_text("epochs: true\n")
    code, _, err = run_cli(
        "finetune", "autoencoder", "--config", tmp_path / "ae.yaml", "--split", split, "-o", tmp_path / "r"
    )
    one_line_error(code, err, "ae.yaml", "epochs: expected a number, got true")
    (tmp_path / "P.yaml").write_text("output: o\ndataset: d\nsplit: {val_fraction: true}\n")
    code, _, err = run_cli("run", tmp_path / "P.yaml")
    one_line_error(code, err, "P.yaml", "val_fraction: expected a number, got true")
    assert not (tmp_path / "r").exists()


def test_nan_score_is_refused_by_overlay(labels, tmp_path, run_cli) -> None:
    gt = labels / "coco" / "test.json"
    image_id = json.loads(gt.read_text())["images"][0]["id"]
    det = tmp_path / "detections.json"
    det.write_text(f'[{{"image_id": {image_id}, "category_id": 1, "bbox": [1, 1, 4, 4], "score": NaN}}]')
    code, _, err = run_cli("annotate", "overlay", "--coco", gt, "--pred", det, "-o", tmp_path / "ov")
    one_line_error(code, err, str(det), "line 1: NaN is not a number")
    assert not (tmp_path / "ov").exists()


# --- class 8: messages that say what is wrong, early ------------------------------------------------


def test_describe_a_file(split, run_cli) -> None:
    code, _, err = run_cli("describe", split)
    one_line_error(code, err, str(split), "is a file; give the dataset (category) folder")


def test_unreadable_image_does_not_orphan_its_mask(data_copy, run_cli) -> None:
    bad = next((data_copy / "test" / "broken_large").iterdir())
    bad.write_bytes(b"not an image")
    code, _, err = run_cli("describe", data_copy)
    one_line_error(code, err, str(bad), "cannot decode image")
    assert "mask without a matching image" not in err


def test_random_bytes_as_anomaly_map(split, labels, tmp_path, run_cli) -> None:
    from defectkit.datasets.split import load_split

    pred = write_scores(tmp_path / "ae", split)
    (pred / "prediction_meta.json").write_text(json.dumps({"kind": "anomaly"}))
    maps = pred / "anomaly_maps"
    maps.mkdir()
    for e in load_split(split).entries:
        (maps / f"{e.name}.npy").write_bytes(os.urandom(64))
    code, _, err = run_cli(*eval_argv(split, labels, tmp_path / "r", ae=pred))
    one_line_error(code, err, ".npy", "not a NumPy .npy array file")
    assert "pickled" not in err


def test_missing_weights_is_reported_before_torch_is_imported(split, tmp_path) -> None:
    out = str(tmp_path / "p")
    argvs = [
        ["predict", "classifier", "--weights", "nope.pt", "--split", str(split), "-o", out],
        ["predict", "sam", "--weights", "nope.pt", "--split", str(split), "--labels", "x", "-o", out],
        ["finetune", "classifier", "--weights", "nope.pt", "--split", str(split), "-o", out],
    ]
    script = (
        "import sys; from defectkit.cli import main\n"
        f"codes = [main(a) for a in {argvs!r}]\n"
        "print(codes, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[2, 2, 2] False", done.stderr
    assert done.stderr.count("nope.pt") == 3 and "not found" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "p").exists()


def test_bad_eval_output_is_found_before_the_work(split, labels, tmp_path, run_cli) -> None:
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(*eval_argv(split, labels, tmp_path / "file" / "r", m=tmp_path / "nowhere"))
    one_line_error(code, err, "file", "cannot create output folder")  # not the missing prediction folder


# --- class 7: process hygiene -------------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out |= {int(c) for c in (task / "children").read_text().split()}
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


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
            kids = _children(proc.pid)
        assert kids, "the convert worker never started"
        time.sleep(1.0)  # let the worker run its initializer
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(k) for k in kids), "a worker outlived its killed parent"
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
    from defectkit.finetune.image_common import open_run

    (tmp_path / "last.pt").write_bytes(b"old")
    assert open_run(tmp_path, "autoencoder", 1, resume=False, exist_ok=True) is None


# --- class 6: whole outputs or none ----------------------------------------------------------------


def _killed_run(argv: list, patch: str) -> None:
    """``defectkit ARGV`` in a subprocess that SIGKILLs itself where ``patch`` says (Python source
    run before the command; it may use ``kill()``)."""
    script = (
        "import os, signal\n"
        "def kill():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"{patch}\n"
        "from defectkit.cli import main\n"
        f"main({[str(a) for a in argv]!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr


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
    _killed_run([*base, "--pred", f"new_model={new}"], patch)
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
    _killed_run([*base, "--split", split], patch)  # COCO of the new split written, YOLO still the old
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


def test_coco_labels_listing_an_image_twice_are_refused(split, labels, tmp_path, run_cli) -> None:
    lab = Path(shutil.copytree(labels, tmp_path / "labels"))
    test_json = lab / "coco" / "test.json"
    coco = json.loads(test_json.read_text())
    coco["images"].append(coco["images"][0])
    test_json.write_text(json.dumps(coco))
    pred = write_scores(tmp_path / "m", split)
    code, _, err = run_cli(*eval_argv(split, lab, tmp_path / "r", m=pred))
    one_line_error(code, err, str(test_json), "listed more than once")
