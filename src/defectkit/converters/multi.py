"""``defectkit convert ROOT --categories all|A,B``: every category as one detection dataset.

The classes are ``category/defect_type`` (``bottle/broken_large``), from one whole-dataset split
manifest (:func:`defectkit.datasets.split_all.make_split_all`): either given with ``--split``
(made by ``defectkit split ROOT --categories ...``) or built here from every category with the
split settings ``defects_to_train`` and ``seed`` and saved as ``LABELS/split.json``.
YOLO-World names come from a names file (``--names FILE``: JSON or YAML mapping class -> phrase)
or from the folder names (``bottle broken large``).
"""

from __future__ import annotations

import os
from pathlib import Path

from defectkit.datasets.split import SplitConfig, SplitManifest, load_split
from defectkit.errors import InputError


def load_names_file(path: str | os.PathLike) -> tuple[tuple[str, str], ...]:
    """A JSON or YAML file ``{class: phrase}`` -> ``((class, phrase), ...)`` in file order.

    Keys are class names as written in the COCO categories (``bottle/broken_large``, or
    ``broken_large`` for one category); InputError naming the file when it is not such a mapping.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read names file ({exc})") from exc
    try:
        if p.suffix.lower() == ".json":
            import json

            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - json/yaml syntax errors of several types
        raise InputError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'} ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) and v.strip() for v in data.values()):
        raise InputError(f"{p}: expected a mapping of class name to a non-empty phrase, e.g. "
                         '{"bottle/broken_large": "broken bottle rim"}')
    return tuple((str(k), v.strip()) for k, v in data.items())


def whole_dataset_split(dataset: str, split: str, categories: tuple[str, ...], out: Path,
                        defects_to_train: int, seed: int) -> tuple[str, str]:
    """(dataset root, split manifest path) for a whole-dataset conversion.

    With ``split``: it must be a whole-dataset manifest of exactly these categories (any for
    ``all``); the dataset folder is used as given. Without: ``dataset`` is scanned (any layout),
    split per category and joined; the manifest is saved as ``out/split.json`` and its root
    (the folder holding the categories) returned.
    """
    from defectkit.datasets.split_all import ALL, make_split_all

    if split:
        manifest = load_split(split, verify=False)
        have = tuple(manifest.category.split(","))
        if not any("/" in d for d in manifest.defect_types) and len(have) == 1:
            raise InputError(f"{split}: a one-category split ({have[0]}); make one with "
                             f"'defectkit split {dataset} --categories {','.join(categories)}'")
        if ALL not in categories and sorted(have) != sorted(categories):
            raise InputError(f"{split}: covers categories {list(have)}, not --categories {list(categories)}")
        return dataset, split
    from defectkit.datasets.layouts import scan_dataset

    manifest: SplitManifest = make_split_all(
        scan_dataset(dataset), SplitConfig(defects_to_train=defects_to_train, seed=seed), categories
    )
    return str(manifest.dataset), str(manifest.save(out / "split.json"))
