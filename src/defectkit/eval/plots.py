"""Report figures as PNG bytes (matplotlib, Agg backend; nothing is shown or downloaded)."""

from __future__ import annotations

import io

import numpy as np


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    return Figure(*args, **kwargs)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    # no timestamps or software tags: the same report gives the same bytes
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def curves_png(models: list[tuple[str, dict | None]]) -> bytes | None:
    """ROC (left) and precision-recall (right) curves of every model with a ``curves`` dict
    ({"fpr", "tpr", "recall", "precision"} lists, optional "auroc"); None when no model has curves."""
    drawn = [(n, c) for n, c in models if c]
    if not drawn:
        return None
    fig = _figure(figsize=(10, 4.2))
    roc, pr = fig.subplots(1, 2)
    for name, c in drawn:
        auroc = f" (AUROC {c['auroc']:.3f})" if c.get("auroc") is not None else ""
        roc.plot(c["fpr"], c["tpr"], label=f"{name}{auroc}")
        pr.plot(c["recall"], c["precision"], label=name, drawstyle="steps-post")
    roc.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=0.8)
    roc.set(
        xlabel="false positive rate (1 - good recall)",
        ylabel="defect recall",
        title="ROC",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    pr.set(xlabel="defect recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.02))
    roc.legend(loc="lower right", fontsize=8)
    pr.legend(loc="lower left", fontsize=8)
    return _png(fig)


def _overlay(ax, case: dict) -> None:
    import matplotlib.patches as patches

    ax.imshow(case["image_array"])
    if case.get("pred_mask") is not None and case["pred_mask"].any():
        red = np.zeros((*case["pred_mask"].shape, 4), dtype=np.float32)
        red[case["pred_mask"]] = (1.0, 0.1, 0.1, 0.45)
        ax.imshow(red)
    if case["gt_mask"].any():
        ax.contour(case["gt_mask"].astype(float), levels=[0.5], colors=["lime"], linewidths=1.2)
    for x1, y1, x2, y2 in case["boxes"]:
        ax.add_patch(
            patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="red", linewidth=1.2)
        )
    title = f"{case['image']}\n{case['reason']}\nscore {case['score']:.3f}"
    if case.get("iou") is not None:
        title += f", IoU {case['iou']:.3f}"
    ax.set_title(title, fontsize=6.5)
    ax.set_axis_off()


def worst_png(cases: list[dict]) -> bytes | None:
    """A strip of worst cases: each image with the ground truth outlined in green and the
    prediction in red (mask fill and/or boxes with score >= threshold). ``cases`` items carry
    image_array (HWC uint8), gt_mask, pred_mask (or None), boxes (XYXY pixels), image, reason,
    score, iou."""
    if not cases:
        return None
    fig = _figure(figsize=(2.4 * len(cases), 2.9))
    axes = np.atleast_1d(fig.subplots(1, len(cases)))
    for ax, case in zip(axes, cases, strict=True):
        _overlay(ax, case)
    return _png(fig)
