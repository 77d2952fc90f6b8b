"""Issue 16, classes 3 and 5: a changed dataset re-runs the chain; a threshold that separates nothing
is reported as such, not as a recall of 1."""

from __future__ import annotations

import json
import shutil

from reliability_helpers import (
    eval_argv,
    write_scores,
)


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


def test_constant_scores_get_no_threshold_and_no_recall(split, labels, tmp_path, run_cli) -> None:
    const = write_scores(tmp_path / "const", split, score=lambda e: 0.0)
    (const / "detections.json").write_text("[]")
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
    assert err.count("const: no usable threshold") == 1  # one warning per model, CSV and boxes both flat
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
