"""The package layout: old flat ``defectkit.finetune.*`` names still import (same objects, with a
DeprecationWarning) and importing the package or the CLI loads no torch."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from defectkit.finetune import MOVED_MODULES, SPLIT_MODULES


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


#: the public names each split module defined (or re-exported) before the split
SPLIT_OLD_NAMES = {
    "classifier": ("KIND", "FIXED_THRESHOLD", "defect_score", "display_name", "train_classifier",
                   "load_classifier", "predict_classifier"),
    "autoencoder": ("KIND", "ConvAutoEncoder", "SSIMAutoEncoder", "build_autoencoder", "anomaly_maps",
                    "reduce_maps", "make_score_fn", "good_map_stats", "make_threshold_fn",
                    "calibrate_checkpoint", "train_autoencoder", "load_autoencoder", "predict_autoencoder"),
}


@pytest.mark.parametrize("old", sorted(SPLIT_MODULES))
def test_split_module_serves_every_old_name(old: str) -> None:
    split = SPLIT_MODULES[old]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.modules.pop(f"defectkit.finetune.{old}", None)
        shim = importlib.import_module(f"defectkit.finetune.{old}")
    assert any(issubclass(w.category, DeprecationWarning) and split.modules[0] in str(w.message) for w in caught)
    targets = [importlib.import_module(m) for m in split.modules]
    for name in SPLIT_OLD_NAMES[old.rsplit(".", 1)[-1]]:
        new = split.renamed.get(name, name)
        homes = [t for t in targets if hasattr(t, new)]
        assert homes, f"{old}.{name}: in none of {split.modules}"
        assert getattr(shim, name) is getattr(homes[0], new)
    kind = {"classifier": "classifier", "autoencoder": "anomaly"}[old.rsplit(".", 1)[-1]]
    assert kind == shim.KIND
    with pytest.raises(AttributeError):
        shim.no_such_name  # noqa: B018


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
        "import defectkit.runtime, defectkit.predictions\n"
        "import defectkit.cli; defectkit.cli.build_parser()\n"
        "print(sorted(m for m in ('torch', 'ultralytics', 'segment_anything', 'cv2') if m in sys.modules))"
    )
    assert _fresh(code) == "[]"


SRC = Path(__file__).resolve().parents[1] / "src" / "defectkit"
#: files allowed over MAX_LINES, with the reason (none today)
LONG_FILES: dict[str, str] = {}
MAX_LINES = 400
#: (file, function) pairs in annotate that import finetune: each runs a model
ANNOTATE_RUNS_A_MODEL = {
    ("auto.py", "_segmenter"),  # SAM masks for the boxes
    ("detect.py", "load_detector"),  # the YOLO-World detector
    ("detect.py", "_apply_text_embeddings"),  # its class text features
}


def _imports(tree: ast.AST) -> list[tuple[str, str | None]]:
    """(imported module, enclosing function or None) for every import statement in ``tree``."""
    found: list[tuple[str, str | None]] = []

    def visit(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Import):
                found.extend((a.name, func) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.append((child.module, func))
                found.extend((f"{child.module}.{a.name}", func) for a in child.names)
            visit(child, inner)

    visit(tree, None)
    return found


def _finetune_imports(package: str) -> list[tuple[str, str | None, str]]:
    out = []
    for path in sorted((SRC / package).rglob("*.py")):
        for module, func in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if module == "defectkit.finetune" or module.startswith("defectkit.finetune."):
                out.append((path.name, func, module))
    return out


@pytest.mark.parametrize("package", ["eval", "converters", "datasets"])
def test_stages_import_nothing_from_finetune(package: str) -> None:
    assert _finetune_imports(package) == []


def test_annotate_imports_finetune_only_where_it_runs_a_model() -> None:
    found = _finetune_imports("annotate")
    assert found, "the AST walk finds annotate's model imports"
    assert {(f, func) for f, func, _ in found} <= ANNOTATE_RUNS_A_MODEL


def test_no_module_over_the_size_limit() -> None:
    too_long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert {k: v for k, v in too_long.items() if k not in LONG_FILES} == {}


MAX_FUNCTION_LINES = 60


def test_long_functions_state_why_in_their_docstring() -> None:
    unexplained = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and "long on purpose" not in (ast.get_docstring(node) or "").lower():
                    unexplained.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    assert unexplained == []
