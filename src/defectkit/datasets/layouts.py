"""Which dataset layout a folder holds, and the one scanner every command uses.

* ``mvtec``: MVTec AD (``train/good``, ``test/<defect>``, ``ground_truth/<defect>``);
* ``mvtec_ad2``: MVTec AD 2 (``train/good``, ``validation/good``, ``test_public/{good,bad}``,
  ``test_public/ground_truth/bad``);
* ``visa``: VisA (``split_csv/1cls.csv`` and ``<object>/Data/{Images,Masks}``).

Each gives the same :class:`~defectkit.datasets.mvtec.DatasetIndex` (paths inside each category
folder, so split manifests, ``convert`` and the torch dataset work unchanged).
"""

from __future__ import annotations

from pathlib import Path

from defectkit.datasets.mvtec import DatasetIndex, _is_category_dir, check_root, scan_mvtec
from defectkit.datasets.mvtec_ad2 import is_ad2_category, scan_mvtec_ad2
from defectkit.datasets.visa import scan_visa, visa_root
from defectkit.errors import InputError

LAYOUTS = ("mvtec", "mvtec_ad2", "visa")
LAYOUT_NAMES = {"mvtec": "MVTec AD", "mvtec_ad2": "MVTec AD 2", "visa": "VisA"}


def detect_layout(path: str | Path) -> str:
    """"mvtec", "mvtec_ad2" or "visa" for a category/object folder or a dataset root.

    A folder that matches none is reported as "mvtec" (its scanner names what is missing); a root
    mixing MVTec AD and MVTec AD 2 categories is an InputError.
    """
    root = check_root(path)
    if visa_root(root) is not None:
        return "visa"
    if is_ad2_category(root):
        return "mvtec_ad2"
    if _is_category_dir(root):
        return "mvtec"
    subs = [p for p in sorted(root.iterdir()) if p.is_dir()]
    ad2 = [p.name for p in subs if is_ad2_category(p)]
    ad1 = [p.name for p in subs if _is_category_dir(p) and not is_ad2_category(p)]
    if ad2 and ad1:
        raise InputError(f"{root}: mixes MVTec AD categories ({', '.join(ad1[:3])}) and MVTec AD 2 "
                         f"categories ({', '.join(ad2[:3])}); give one layout per folder")
    return "mvtec_ad2" if ad2 else "mvtec"


def scan_dataset(path: str | Path, *, lenient: bool = False) -> DatasetIndex:
    """Scan ``path`` with the reader of its layout (:func:`detect_layout`); ``index.layout`` says which.

    ``lenient=True`` drops defect images without a mask with a warning instead of failing.
    """
    layout = detect_layout(path)
    if layout == "visa":
        return scan_visa(path, lenient=lenient)
    if layout == "mvtec_ad2":
        return scan_mvtec_ad2(path, lenient=lenient)
    return scan_mvtec(path, lenient=lenient)
