"""Segment Anything (segment-anything): fine-tune the mask decoder on box prompts, predict masks.

One role per file, the same file names as in ``finetune/yolo_world`` and ``finetune/image``:

- ``config``: :class:`SamTrainConfig` (the training settings, saved to the run's ``config.json``)
- ``model``: build / load a SAM (``sam_model_registry``, ``build_sam_model``, the tiny test model)
- ``fast_decoder``: a batched, CPU-friendly equivalent of SAM's mask decoder
- ``data``: COCO instances to :class:`SamSample` (masks, boxes, augmentation)
- ``cache``: the image-embedding cache (frozen encoder)
- ``engine``: losses, one training epoch, evaluation
- ``train``: :func:`train_sam` (one run folder, resume)
- ``predict``: :class:`SamPredictConfig`, :func:`predict_masks` and :func:`predict_sam` (COCO results json)
- ``cli``: ``defectkit finetune sam`` / ``defectkit predict sam``

Names are exported lazily: ``import defectkit.finetune.sam`` imports no torch.
"""

from defectkit._lazy import lazy_exports

_EXPORTS = {
    "sam_model_registry": "model",
    "build_sam_model": "model",
    "build_sam_tiny": "model",
    "MODEL_TYPES": "model",
    "SamSample": "data",
    "load_coco_samples": "data",
    "EmbeddingCache": "cache",
    "SamTrainConfig": "config",
    "train_sam": "train",
    "SamPredictConfig": "predict",
    "predict_masks": "predict",
    "predict_sam": "predict",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
