"""Per-image conversion step (runs in worker processes): read one mask, split it into instances.

Kept apart from ``convert`` so a process pool pickles only small jobs and results.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from defectkit.converters.instances import Instance, box_to_instances, mask_to_instances
from defectkit.converters.png import decode_gray8
from defectkit.datasets.io import mask_cut
from defectkit.errors import InputError
from defectkit.fileio import sha256_bytes


@dataclass(frozen=True)
class Job:
    """One image: image and mask paths (mask None for good images), the size the manifest recorded."""

    name: str
    image: str
    mask: str | None
    width: int
    height: int
    label: int
    min_area: int
    per_image: bool
    simplify: float
    check: bool


@dataclass
class ImageResult:
    """instances; dropped: specks removed; nonbinary: 1 if the mask was not clean 0/max;
    fidelity: per instance (IoU of the COCO polygon raster, IoU of the YOLO-text raster) vs the
    instance with its holes filled (only when ``check``)."""

    instances: list[Instance] = field(default_factory=list)
    dropped: int = 0
    nonbinary: int = 0
    fidelity: list[tuple[float, float]] = field(default_factory=list)
    image_sha: str = ""
    mask_sha: str | None = None


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: listed in the split manifest but missing from the dataset") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def process(job: Job) -> ImageResult:
    """Hash the image and mask files (for the split fingerprint: each file is read once, here, in
    parallel) and convert the mask; InputError naming the mask for unreadable or mis-sized files."""
    image_sha = sha256_bytes(_read(job.image))
    if job.mask is None:
        return ImageResult(image_sha=image_sha)
    data = _read(job.mask)
    instances, dropped, nonbinary, shape = _mask_instances(job, data)
    if shape != (job.height, job.width):
        raise InputError(
            f"{job.mask}: mask size {shape[1]}x{shape[0]} differs from image size "
            f"{job.width}x{job.height} of {job.name}"
        )
    result = ImageResult(instances, dropped, int(nonbinary), image_sha=image_sha, mask_sha=sha256_bytes(data))
    if job.check:
        result.fidelity = [instance_fidelity(i, job.width, job.height) for i in instances]
    return result


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker when the process that started it dies, even by SIGKILL
    (which runs no cleanup in the parent). Linux: the kernel sends SIGTERM (``PR_SET_PDEATHSIG``);
    elsewhere, and as a backstop, a daemon thread checks every second that the parent is alive."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="defectkit-parent-watch", daemon=True).start()


def process_many(jobs: list[Job]) -> list[ImageResult]:
    """``process`` of each job (one pool task per chunk keeps the inter-process traffic small)."""
    return [process(j) for j in jobs]


def _mask_instances(job: Job, data: bytes) -> tuple[list[Instance], int, bool, tuple[int, int]]:
    """(instances, specks dropped, not clean 0/255, mask HxW) of the mask file's bytes.

    MVTec's 8-bit grayscale PNGs are decoded by ``converters.png`` (the same pixels, ~2x faster
    than OpenCV), other 8-bit one-channel files by OpenCV, and those are handled inside the box of
    their nonzero pixels only (full-size threshold, check and labelling passes cost more than all
    the rest on a 900x900 mask); any other layout goes through the general reader.
    """
    import cv2

    arr = decode_gray8(data)
    if arr is None:
        arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if arr is None or arr.ndim != 2 or arr.dtype != np.uint8:
        mask, nonbinary = read_mask_fast(job.mask, data)
        return (
            *mask_to_instances(mask, min_area=job.min_area, per_image=job.per_image, simplify=job.simplify),
            nonbinary,
            mask.shape,
        )
    x, y, w, h = cv2.boundingRect(arr)  # every nonzero pixel, so every foreground and non-binary one
    box = arr[y : y + h, x : x + w]
    cut = mask_cut(int(box.max())) if w > 0 else 127.5
    nonbinary = w > 0 and cut > 1 and cv2.countNonZero(cv2.inRange(box, 1, 254)) > 0
    instances, dropped = box_to_instances(
        box > cut, x, y, arr.shape, min_area=job.min_area, per_image=job.per_image, simplify=job.simplify
    )
    return instances, dropped, nonbinary, arr.shape


def read_mask_fast(path: str, data: bytes | None = None) -> tuple[np.ndarray, bool]:
    """(HxW bool mask thresholded at >127, True if not clean 0/255) for a mask file.

    Files OpenCV decodes to one 8-bit channel (MVTec's grayscale and 1-bit PNGs) take a fast path,
    about 2x faster than the general reader; every other mode (16-bit, RGBA, LA, palette) and
    every unreadable file goes through ``datasets.io.read_mask`` and its errors. ``data``: the
    file's bytes when already read.
    """
    import cv2

    from defectkit.datasets.io import read_mask

    if data is None:
        arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    else:
        arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if arr is None or arr.ndim != 2 or arr.dtype != np.uint8:
        read = read_mask(path)
        return read.mask, read.nonbinary_pixels > 0
    cut = mask_cut(int(arr.max())) if arr.size else 127.5
    return arr > cut, cut > 1 and cv2.countNonZero(cv2.inRange(arr, 1, 254)) > 0


def instance_fidelity(inst: Instance, width: int, height: int) -> tuple[float, float]:
    """(IoU of pycocotools raster of the COCO polygons vs the instance mask with holes filled,
    IoU of the YOLO text read as ultralytics does (denormalised, int32, ``cv2.fillPoly``) vs the
    instance mask itself), both computed in the instance's box."""
    from defectkit.converters.centre_polygons import fillpoly_raster
    from defectkit.converters.instances import decode_rle
    from defectkit.converters.polygons import fill_holes, mask_iou, rasterize_coco
    from defectkit.converters.yolo import instances_to_yolo_lines, parse_yolo_lines

    x0, y0, x1, y1 = inst.bbox_xyxy
    own = decode_rle(inst.rle)[y0:y1, x0:x1]
    target = fill_holes(own)
    h, w = target.shape
    shift = np.array([x0, y0], dtype=np.float64)
    local = [
        (np.asarray(p, dtype=np.float64).reshape(-1, 2) - shift).reshape(-1).tolist() for p in inst.polygons
    ]
    coco_iou = mask_iou(rasterize_coco(local, h, w), target)
    rows = parse_yolo_lines("\n".join(instances_to_yolo_lines([inst], 0, width, height)))
    yolo_polys = [vals.reshape(-1, 2) * (width, height) - shift for _, vals in rows]
    yolo_iou = mask_iou(fillpoly_raster(yolo_polys, h, w), own)
    return coco_iou, yolo_iou
