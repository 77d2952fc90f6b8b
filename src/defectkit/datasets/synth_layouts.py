"""Where ``defectkit synth`` puts each sample in the MVTec AD, MVTec AD 2 and VisA layouts (pure).

The same rendered samples go to every layout, so each layout scans back to the same counts:

* ``mvtec``: ``<cat>/train/good/NNN.png``, ``<cat>/test/{good,<defect>}/NNN.png``,
  ``<cat>/ground_truth/<defect>/NNN_mask.png`` (0/255);
* ``mvtec_ad2``: the last ``n_train // 5`` train images in ``<cat>/validation/good``, the rest in
  ``<cat>/train/good``; ``<cat>/test_public/good/NNN.png``, every defect in
  ``<cat>/test_public/bad/<defect>_NNN.png`` with ``test_public/ground_truth/bad/<defect>_NNN_mask.png``
  (0/255), plus two images each in ``test_private/`` and ``test_private_mixed/`` (no masks);
* ``visa``: ``<cat>/Data/Images/Normal/NNNN.JPG`` (train then test goods),
  ``<cat>/Data/Images/Anomaly/NNN.JPG`` (defect types in order), ``<cat>/Data/Masks/Anomaly/NNN.png``
  (0/1) and one ``split_csv/1cls.csv`` at the root.
"""

from __future__ import annotations

from dataclasses import dataclass

SYNTH_LAYOUTS = ("mvtec", "mvtec_ad2", "visa")
VISA_HEADER = ("object", "split", "label", "image", "mask")
N_PRIVATE = 2  # images in each of MVTec AD 2's test_private/ and test_private_mixed/


@dataclass(frozen=True)
class Job:
    """One sample to render: ``role`` is "train", "test", "private" or "private_mixed"; ``defect`` None
    for a good image; ``i`` its number within (role, defect)."""

    category: str
    role: str
    defect: str | None
    i: int


@dataclass(frozen=True)
class Placement:
    """Where a sample goes, relative to the output root (POSIX). ``mask_value``: the value of defect
    pixels in the mask file (255 or 1); ``row``: the VisA CSV row, if any."""

    image: str
    mask: str | None
    mask_value: int
    row: tuple[str, ...] | None = None


def n_validation(n_train: int) -> int:
    """Train images that MVTec AD 2's layout puts in ``validation/good``."""
    return n_train // 5 if n_train >= 2 else 0


def jobs_for(category: str, defects: tuple[str, ...], n_train: int, n_test_good: int, n_per_defect: int,
             layout: str) -> list[Job]:
    """Every sample of one category, in writing order."""
    jobs = [Job(category, "train", None, i) for i in range(n_train)]
    jobs += [Job(category, "test", None, i) for i in range(n_test_good)]
    jobs += [Job(category, "test", d, i) for d in defects for i in range(n_per_defect)]
    if layout == "mvtec_ad2":
        jobs += [Job(category, "private", None, i) for i in range(N_PRIVATE)]
        jobs += [Job(category, "private_mixed", defects[0], i) for i in range(N_PRIVATE)]
    return jobs


def place(job: Job, layout: str, defects: tuple[str, ...], n_train: int, n_per_defect: int) -> Placement:
    """The Placement of ``job`` in ``layout`` (see the module docstring)."""
    c, d, i = job.category, job.defect, job.i
    if layout == "mvtec":
        if job.role == "train":
            return Placement(f"{c}/train/good/{i:03d}.png", None, 255)
        if d is None:
            return Placement(f"{c}/test/good/{i:03d}.png", None, 255)
        return Placement(f"{c}/test/{d}/{i:03d}.png", f"{c}/ground_truth/{d}/{i:03d}_mask.png", 255)
    if layout == "mvtec_ad2":
        if job.role in ("private", "private_mixed"):
            return Placement(f"{c}/test_{job.role}/{i:03d}.png", None, 255)
        if job.role == "train":
            n_fit = n_train - n_validation(n_train)
            if i < n_fit:
                return Placement(f"{c}/train/good/{i:03d}.png", None, 255)
            return Placement(f"{c}/validation/good/{i - n_fit:03d}.png", None, 255)
        if d is None:
            return Placement(f"{c}/test_public/good/{i:03d}.png", None, 255)
        stem = f"{d}_{i:03d}"
        return Placement(f"{c}/test_public/bad/{stem}.png", f"{c}/test_public/ground_truth/bad/{stem}_mask.png", 255)
    if layout == "visa":
        if d is None:
            image = f"{c}/Data/Images/Normal/{i + (0 if job.role == 'train' else n_train):04d}.JPG"
            return Placement(image, None, 1, (c, job.role, "normal", image, ""))
        k = defects.index(d) * n_per_defect + i
        image, mask = f"{c}/Data/Images/Anomaly/{k:03d}.JPG", f"{c}/Data/Masks/Anomaly/{k:03d}.png"
        return Placement(image, mask, 1, (c, "test", "anomaly", image, mask))
    raise ValueError(f"unknown layout {layout!r}; expected one of {SYNTH_LAYOUTS}")


def visa_csv(rows: list[tuple[str, ...]]) -> str:
    """``split_csv/1cls.csv`` text: the header and one line per row (no quoting needed: our paths)."""
    return "".join(",".join(r) + "\n" for r in [VISA_HEADER, *rows])
