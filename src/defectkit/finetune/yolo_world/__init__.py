"""YOLO-World (ultralytics): offline CLIP text embeddings, fine-tuning, prediction.

One role per file, the same file names as in ``finetune/sam`` and ``finetune/image``. There is no
``data`` or ``model`` file: ultralytics owns both (its datasets read the ``defectkit convert`` YOLO
folder's ``data.yaml``; its ``YOLOWorld`` / ``YOLO`` classes build and load the network).

- ``config``: :class:`YoloFinetuneConfig` and the ``--set`` parser
- ``text_embeddings``: CLIP text embeddings of the class names (``defectkit embed-text``)
- ``env``: importing ultralytics offline (no DNS, no settings outside the run)
- ``augment``: the extra transpose augmentation
- ``trainer``: the training engine (the ``engine`` of ``sam/`` and ``image/``): ultralytics trainer
  subclasses that stay offline and take the text features from the file (import only after
  ``env.import_ultralytics``; its logger name appears in every epoch's log line)
- ``train``: :func:`finetune_yolo` / :func:`resume_yolo` (one run folder)
- ``predict``: :class:`YoloPredictConfig` and :func:`predict_yolo` (COCO results json)
- ``cli``: ``defectkit embed-text``, ``finetune yolo-world``, ``predict yolo-world``

Names are exported lazily: ``import defectkit.finetune.yolo_world`` imports neither torch nor
ultralytics.
"""

from defectkit._lazy import lazy_exports

_EXPORTS = {
    "TextEmbeddings": "text_embeddings",
    "EmbedTextConfig": "text_embeddings",
    "embed_text": "text_embeddings",
    "load_text_embeddings": "text_embeddings",
    "save_text_embeddings": "text_embeddings",
    "import_ultralytics": "env",
    "YoloFinetuneConfig": "config",
    "parse_set_overrides": "config",
    "finetune_yolo": "train",
    "resume_yolo": "train",
    "YoloPredictConfig": "predict",
    "predict_yolo": "predict",
}
__all__ = sorted(_EXPORTS)
# fallback "train": the flat module defectkit.finetune.yolo_world (<= 0.x) became this package
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, fallback="train")
