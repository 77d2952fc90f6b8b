"""Issue 16, class 2: no code runs from a file a user hands over (torch.load weights_only=True;
ultralytics checkpoints sniffed from pickle opcodes, never unpickled)."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_helpers import (
    one_line_error,
)


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


PLAIN = "not a plain weights file"
NOT_ULTRALYTICS = "not an ultralytics checkpoint"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("predict classifier --weights {pt} --split {split} -o {out}", PLAIN),
        ("predict autoencoder --weights {pt} --split {split} -o {out}", PLAIN),
        ("finetune classifier --weights {pt} --split {split} -o {out} --epochs 1 --image-size 32", PLAIN),
        ("finetune sam --checkpoint {pt} --coco {labels}/coco/test.json --model-type tiny -o {out}", PLAIN),
        ("predict yolo-world --weights {pt} --split {split} --labels {labels} -o {out}", NOT_ULTRALYTICS),
        ("finetune yolo-world --data {labels}/yolo/data.yaml --model {pt} -o {out}", NOT_ULTRALYTICS),
    ],
    ids=[
        "predict-classifier",
        "predict-autoencoder",
        "finetune-classifier",
        "finetune-sam",
        "predict-yolo",
        "finetune-yolo",
    ],
)
def test_crafted_checkpoint_runs_no_code(argv, message, crafted_pt, split, labels, tmp_path, run_cli) -> None:
    pt, marker = crafted_pt
    subs = {"{pt}": str(pt), "{split}": str(split), "{out}": str(tmp_path / "out"), "{labels}": str(labels)}
    for key, value in subs.items():
        argv = argv.replace(key, value)
    code, _, err = run_cli(*argv.split())
    one_line_error(code, err, str(pt), message)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_own_checkpoints_hold_plain_types_only(tmp_path: Path) -> None:
    """A defectkit checkpoint (with its RNG state) loads with ``weights_only=True`` and restores the
    numpy RNG exactly; one written before (numpy state as an array) still loads, safely."""
    import numpy as np
    import torch

    from defectkit.runtime import load_checkpoint, rng_state, set_rng_state

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
    from defectkit.finetune.yolo_world.train import checkpoint_is_world
    from defectkit.runtime import pickled_globals

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
