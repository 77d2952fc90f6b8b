"""Import ultralytics offline and without touching the user's global ultralytics settings.

ultralytics decides at import time whether it is online (it resolves two DNS names unless
``YOLO_OFFLINE`` is set) and reads/creates its settings file in ``YOLO_CONFIG_DIR`` (default
``~/.config/Ultralytics``). :func:`import_ultralytics` sets both environment variables first:
``YOLO_OFFLINE=1`` always, and ``YOLO_CONFIG_DIR`` to a folder defectkit owns unless the user set
one. Both have to be process-wide because ultralytics reads them once, at its first import.
"""

from __future__ import annotations

import logging
import os
import sys
import types
from pathlib import Path

log = logging.getLogger(__name__)


def default_config_dir() -> Path:
    """defectkit's private ultralytics config folder: ``$XDG_CACHE_HOME/defectkit/ultralytics``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "defectkit" / "ultralytics"


def _unpatch_pil_open() -> None:
    """Undo ultralytics' process-wide ``PIL.Image.open`` patch: on any unreadable image it tries to
    pip-install ``pi-heif`` (offline: fails), so a corrupt file read later in the same process was
    reported as "No module named 'pi_heif'" instead of as an undecodable image."""
    from PIL import Image

    original = getattr(sys.modules.get("ultralytics.utils.patches"), "_image_open", None)
    if original is not None and getattr(Image.open, "__module__", "") == "ultralytics.utils.patches":
        Image.open = original


def quiet_albumentations() -> None:
    """Keep albumentations from asking the package index for its latest version at import (it does
    unless ``NO_ALBUMENTATIONS_UPDATE`` is set; offline that is a warning and a wait). Call before
    anything may import it (ultralytics' augmentations, our image augmentation)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def import_ultralytics(config_dir: str | os.PathLike | None = None) -> types.ModuleType:
    """Import and return ``ultralytics`` with ``YOLO_OFFLINE=1`` and a private ``YOLO_CONFIG_DIR``.

    ``config_dir``: where ultralytics may keep its settings.json (default :func:`default_config_dir`);
    ignored when ``YOLO_CONFIG_DIR`` is already set or ultralytics is already imported.
    """
    quiet_albumentations()
    if "ultralytics" not in sys.modules:
        os.environ["YOLO_OFFLINE"] = "1"
        if not os.environ.get("YOLO_CONFIG_DIR"):
            cfg = Path(config_dir) if config_dir is not None else default_config_dir()
            cfg.mkdir(parents=True, exist_ok=True)
            os.environ["YOLO_CONFIG_DIR"] = str(cfg)
    ul_logger = logging.getLogger("ultralytics")
    wanted_level = ul_logger.level  # set by `defectkit -v/-q`; ultralytics resets it on import
    import ultralytics
    from ultralytics import utils as ul_utils

    if wanted_level:
        ul_logger.setLevel(wanted_level)
    _unpatch_pil_open()

    if getattr(ul_utils, "ONLINE", False):
        log.warning(
            "ultralytics was imported before defectkit could set YOLO_OFFLINE=1; analytics callbacks "
            "are removed from every trainer/predictor defectkit builds, but set YOLO_OFFLINE=1 to be sure"
        )
    return ultralytics
