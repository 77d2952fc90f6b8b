"""Image-level models: a torchvision classifier (ResNet ...) and an AutoEncoder anomaly baseline.

One role per file, the same file names as in ``finetune/sam`` and ``finetune/yolo_world``:

- ``config``: :class:`ClassifierConfig`, :class:`AutoencoderConfig`, :class:`ImagePredictConfig`
- ``data``: split manifest to loaders, samplers, class counts
- ``augment``, ``losses``: training augmentation; classification / reconstruction losses
- ``classifier_model``, ``autoencoder_model``: the networks
- ``engine``: the shared fit loop (epochs, validation, checkpoints, resume); ``dist``: DDP helpers
- ``runs``: optimiser / scheduler factories and run-folder helpers (log, ``--resume``)
- ``classifier``, ``autoencoder``: ``train_*`` and ``predict_*`` for each model
- ``predict``: scoring splits and writing the prediction folder; ``metrics``: image-level metrics
- ``cli``: ``defectkit finetune|predict classifier|autoencoder``

Names are exported lazily: ``import defectkit.finetune.image`` imports no torch.
"""

from defectkit._lazy import lazy_exports

_EXPORTS = {
    "ClassifierConfig": "config",
    "AutoencoderConfig": "config",
    "ImagePredictConfig": "config",
    "train_classifier": "classifier",
    "predict_classifier": "classifier",
    "load_classifier": "classifier",
    "build_classifier": "classifier_model",
    "train_autoencoder": "autoencoder",
    "predict_autoencoder": "autoencoder",
    "load_autoencoder": "autoencoder",
    "build_autoencoder": "autoencoder_model",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
