"""The package layout: old flat ``defectkit.finetune.*`` names still import (same objects, with a
DeprecationWarning) and importing the package or the CLI loads no torch."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

from defectkit.finetune import MOVED_MODULES


def _fresh(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_old_module_path_is_the_new_module(old: str) -> None:
    new = importlib.import_module(MOVED_MODULES[old])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.modules.pop(f"defectkit.finetune.{old}", None)
        aliased = importlib.import_module(f"defectkit.finetune.{old}")
    assert aliased is new
    assert new.__spec__.name == MOVED_MODULES[old]  # the alias leaves the real module's spec alone
    assert any(issubclass(w.category, DeprecationWarning) and MOVED_MODULES[old] in str(w.message) for w in caught)


def test_documented_imports_give_the_same_objects() -> None:
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "from defectkit.finetune.sam_model import sam_model_registry, build_sam_model\n"
        "from defectkit.finetune.sam_predict import predict_masks\n"
        "from defectkit.finetune.yolo_world import YoloFinetuneConfig, parse_set_overrides\n"
        "from defectkit.finetune import sam\n"
        "import defectkit.finetune.sam.model as m, defectkit.finetune.sam.predict as p\n"
        "import defectkit.finetune.yolo_world.train as t\n"
        "print(sam_model_registry is m.sam_model_registry is sam.sam_model_registry,"
        " build_sam_model is m.build_sam_model is sam.build_sam_model,"
        " predict_masks is p.predict_masks is sam.predict_masks,"
        " YoloFinetuneConfig is t.YoloFinetuneConfig, parse_set_overrides is t.parse_set_overrides)"
    )
    assert _fresh(code) == "True True True True True"


def test_packages_and_cli_import_no_torch() -> None:
    code = (
        "import sys\n"
        "import defectkit.finetune, defectkit.finetune.sam, defectkit.finetune.image, defectkit.finetune.yolo_world\n"
        "import defectkit.runtime\n"
        "import defectkit.cli; defectkit.cli.build_parser()\n"
        "print(sorted(m for m in ('torch', 'ultralytics', 'segment_anything', 'cv2') if m in sys.modules))"
    )
    assert _fresh(code) == "[]"
