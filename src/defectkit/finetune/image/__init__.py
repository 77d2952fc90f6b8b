"""Image-level models: a torchvision classifier (ResNet ...) and an AutoEncoder anomaly baseline.

One role per file, the same file names as in ``finetune/sam`` and ``finetune/yolo_world``:

- ``config``: :class:`ClassifierConfig`, :class:`AutoencoderConfig`, :class:`ImagePredictConfig`
- ``data``: split manifest to loaders, samplers, class counts
- ``model``: the networks (torchvision classifier with a new head, the AutoEncoders), building and
  loading them (:func:`build_classifier`, :func:`load_classifier`, ...), and how each turns its
  output into an image score (1 - p(good); the AutoEncoder's anomaly map and its reduction)
- ``engine``: the shared fit loop (epochs, validation, checkpoints, resume); ``dist``: DDP helpers
- ``train``: :func:`train_classifier` and :func:`train_autoencoder` (with the AutoEncoder's
  calibration of its error maps and val threshold)
- ``predict``: :func:`predict_classifier` and :func:`predict_autoencoder` (the prediction folder
  of a split); ``folder_predict``: :func:`predict_images` (``--images DIR``, unlabelled images)
- ``cli``: ``defectkit finetune|predict classifier|autoencoder``
- helpers of training: ``augment`` (augmentation), ``losses`` (classification / reconstruction
  losses), ``runs`` (optimiser / scheduler factories, run-folder log, ``--resume``),
  ``metrics`` (image-level metrics and thresholds of the val split, by eval's rules)

Names are exported lazily: ``import defectkit.finetune.image`` imports no torch.
"""

from defectkit._lazy import lazy_exports

_EXPORTS = {
    "ClassifierConfig": "config",
    "AutoencoderConfig": "config",
    "ImagePredictConfig": "config",
    "build_classifier": "model",
    "load_classifier": "model",
    "build_autoencoder": "model",
    "load_autoencoder": "model",
    "train_classifier": "train",
    "train_autoencoder": "train",
    "predict_classifier": "predict",
    "predict_autoencoder": "predict",
    "FolderPredictConfig": "folder_predict",
    "predict_images": "folder_predict",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
