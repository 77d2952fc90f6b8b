"""Reading images and masks with clear errors.

Images come back as HWC uint8 RGB arrays; masks as HxW bool arrays thresholded at >127
(8-bit scale), whatever the file's mode (1, L, P, LA, RGB, RGBA, I;16).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defectkit.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def encode_png(arr: np.ndarray, compression: int = 6) -> bytes:
    """PNG bytes of an HWC uint8 RGB image or an HxW uint8 mask (OpenCV, zlib level ``compression``)."""
    import cv2

    if arr.ndim == 3:
        arr = arr[:, :, ::-1]  # RGB -> BGR for OpenCV
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def is_image_file(path: Path) -> bool:
    """True for a regular file whose extension is an image extension (case-insensitive)."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _open_decoded(path: Path, what: str):
    from PIL import Image, UnidentifiedImageError

    try:
        if os.path.getsize(path) == 0:
            raise InputError(f"{path}: {what} file is empty (0 bytes)")
        im = Image.open(path)
        im.load()  # decode fully: verify() misses truncated data
        return im
    except InputError:
        raise
    except FileNotFoundError as exc:
        raise InputError(f"{path}: {what} not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot decode {what} ({exc})") from exc
    except Exception as exc:  # a Pillow plugin registered by another library failed on these bytes
        raise InputError(f"{path}: cannot decode {what} ({type(exc).__name__}: {exc})") from exc


def image_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """Decode the image fully and return ``(width, height, channels)`` of the stored file."""
    im = _open_decoded(Path(path), "image")
    channels = len(im.getbands()) if im.mode != "P" else 3
    return im.width, im.height, channels


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as an HWC uint8 RGB array (grayscale/palette/RGBA are converted to RGB)."""
    im = _open_decoded(Path(path), "image")
    if im.mode in ("I;16", "I;16B", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


@dataclass(frozen=True)
class MaskRead:
    """A mask as read from disk.

    mask: HxW bool, True = defect (value > 127 on the 8-bit scale; > 0 when the largest value < 128).
    nonbinary_pixels: pixels whose value was neither 0 nor the maximum (0 for a clean 0/255 mask).
    area_change: |count(>0) - count(>127)|, the pixels a naive ">0" threshold would add.
    zero_one: the file holds only 0 and 1 (a 0/1 mask, read as binary; see :func:`mask_cut`; a mask of
    other small labels, largest value < 128, is read as "> 0" too, with ``zero_one`` False).
    """

    mask: np.ndarray
    nonbinary_pixels: int
    area_change: int
    zero_one: bool = False


def mask_cut(max_value: float) -> float:
    """The value a mask pixel must exceed to be defect, given the mask's largest raw value: 0.5 for a
    label mask whose largest value is below 128 (0/1 masks, as VisA ships, and masks of small
    non-zero labels: ">127" would empty them, so any non-zero pixel is defect), else 127.5
    (">127" on the 8-bit scale). Every mask reader goes through this."""
    return 0.5 if 0 < max_value < 128 else 127.5


def read_mask(path: str | os.PathLike) -> MaskRead:
    """Read a mask file of any common mode; threshold at >127 (8-bit) or >32767 (16-bit)."""
    im = _open_decoded(Path(path), "mask")
    if im.mode == "1":
        m = np.asarray(im, dtype=bool)
        return MaskRead(m.copy(), 0, 0)
    if im.mode in ("I;16", "I;16B", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if arr.size and mask_cut(arr.max()) < 1:  # a 0/1 or small-label mask (mask_cut)
            return _zero_one(arr)
        scale = 65535.0 if arr.max() > 255 else 255.0
        arr = arr * (255.0 / scale)
    elif im.mode in ("LA", "RGBA", "RGB", "P", "PA", "CMYK", "YCbCr"):
        arr = np.asarray(im.convert("L"), dtype=np.float64)
    else:
        arr = np.asarray(im, dtype=np.float64)
    if arr.size and mask_cut(arr.max()) < 1:  # a 0/1 or small-label mask (mask_cut)
        return _zero_one(arr)
    mask = arr > 127.5  # == "> 127" on 8-bit integers
    nonzero = int((arr > 0).sum())
    full = int((arr >= 254.5).sum())
    zero = int((arr <= 0).sum())
    nonbinary = int(arr.size - full - zero)
    return MaskRead(mask, nonbinary, abs(nonzero - int(mask.sum())))


def _zero_one(arr: np.ndarray) -> MaskRead:
    return MaskRead(arr > mask_cut(1), 0, 0, zero_one=bool(arr.max() == 1))
