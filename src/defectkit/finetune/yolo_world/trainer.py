"""ultralytics trainers that never reach the network and take YOLO-World text features from a file.

Import this module only after :func:`defectkit.finetune.yolo_world.env.import_ultralytics` (it
subclasses ultralytics classes at import time); :mod:`defectkit.finetune.yolo_world.train` does that.

* :class:`TextFileWorldTrainer` (a ``WorldTrainer``): the training batches, the EMA ``set_classes``
  step and validation all use the :class:`TextEmbeddings` given to it, so CLIP is never built. The
  EMA model (saved as ``best.pt``/``last.pt``) keeps ``txt_feats`` [1, nc, 512] and ``names``, so
  ``YOLOWorld("best.pt").predict(...)`` works with no CLIP and no embeddings file. A model built
  from a ``.yaml`` config (from scratch) starts with a class-prior bias in its contrastive heads,
  as YOLOE does (:func:`init_contrastive_prior`); pretrained checkpoints are untouched.
* :class:`OfflineDetectionTrainer`: the closed-set YOLO baseline with the same offline guards
  (its ``Detect`` head already gets a class prior from ultralytics' ``bias_init``).

Both drop ultralytics' integration callbacks (analytics events, Platform upload, W&B, ...) and run
with two scoped guards (see :func:`offline_guards`). The embeddings travel inside the callbacks dict
so ultralytics' DDP launcher (which pickles ``trainer.callbacks``) carries them to every worker.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.models.yolo.world import WorldTrainer
from ultralytics.models.yolo.world.train import on_pretrain_routine_end as _ul_set_ema_classes
from ultralytics.utils import DEFAULT_CFG
from ultralytics.utils import callbacks as ul_callbacks

from defectkit.errors import InputError
from defectkit.fileio import atomic_write_text
from defectkit.finetune.yolo_world.text_embeddings import TextEmbeddings

log = logging.getLogger(__name__)

#: callback modules that send data somewhere (analytics events, Platform, W&B, MLflow, ...)
_INTEGRATION_PREFIXES = ("ultralytics.utils.events", "ultralytics.utils.callbacks.", "ultralytics.hub")
_KEEP_MODULES = ("ultralytics.utils.callbacks.base",)


def is_integration_callback(cb: Any) -> bool:
    """True for ultralytics callbacks that talk to an outside service (never for our own)."""
    module = getattr(cb, "__module__", "") or ""
    return module.startswith(_INTEGRATION_PREFIXES) and module not in _KEEP_MODULES


def strip_integration_callbacks(obj: Any) -> None:
    """Remove integration callbacks from a trainer/validator/predictor's ``callbacks`` dict in place."""
    for event, cbs in obj.callbacks.items():
        obj.callbacks[event] = [cb for cb in cbs if not is_integration_callback(cb)]


def _local_check_font(font: str = "Arial.ttf") -> Path:
    """ultralytics' ``check_font`` without its download (it probes a URL on every dataset check and
    downloads Arial.ttf for plot labels): the font if installed, else matplotlib's DejaVu Sans."""
    import matplotlib
    from matplotlib import font_manager
    from ultralytics.utils import USER_CONFIG_DIR

    local = USER_CONFIG_DIR / Path(font).name
    if local.exists():
        return local
    matches = [
        f.fname for f in font_manager.fontManager.ttflist if font in f.fname and Path(f.fname).exists()
    ]
    return Path(matches[0]) if matches else Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def _make_local_check_amp(original: Any) -> Any:
    def _local_check_amp(model: torch.nn.Module, *args: Any, **kwargs: Any) -> bool:
        """AMP self-check only when its reference model is already on disk (it would download it)."""
        from ultralytics.utils import WEIGHTS_DIR

        if next(model.parameters()).device.type in {"cpu", "mps"}:
            return False
        if (WEIGHTS_DIR / "yolo26n.pt").is_file():
            return original(model, *args, **kwargs)
        log.info("AMP self-check skipped (its reference weights are not on disk and are never downloaded)")
        return True  # what ultralytics itself does when the check cannot run offline

    return _local_check_amp


@contextlib.contextmanager
def keep_torch_threads() -> Iterator[int]:
    """Restore ``torch.get_num_threads()`` on exit: ultralytics' ``select_device`` sets it to
    cpu_count - 1 (1 thread on a 2-core machine) and never sets it back."""
    threads = torch.get_num_threads()
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def offline_guards() -> Iterator[None]:
    """For the duration of the block, ultralytics' font checks and AMP self-check stay local.

    All are module attributes looked up at call time (``ultralytics.utils.plotting`` keeps its own
    reference to ``check_font``), restored on exit (nothing outlives the call).
    """
    import ultralytics.data.utils as ul_data_utils
    import ultralytics.engine.trainer as ul_trainer
    import ultralytics.utils.plotting as ul_plotting

    saved = (ul_data_utils.check_font, ul_plotting.check_font, ul_trainer.check_amp)
    ul_data_utils.check_font = ul_plotting.check_font = _local_check_font
    ul_trainer.check_amp = _make_local_check_amp(saved[2])
    try:
        yield
    finally:
        ul_data_utils.check_font, ul_plotting.check_font, ul_trainer.check_amp = saved


#: from-scratch start of every contrastive head's ``logit_scale`` (log of the factor applied to the
#: BN-normalised image feature . unit text embedding); ultralytics starts at -1 (factor 0.37)
SCRATCH_LOGIT_SCALE = math.log(2.0)


def contrastive_prior_bias(nc: int, stride: float) -> float:
    """YOLOE's class prior for a contrastive head: ``log(5 / nc / (640 / stride) ** 2)``.

    The logit whose sigmoid is the expected share of anchors holding one of ``nc`` classes at a
    level of ``stride`` pixels (~5 objects per 640 px image); e.g. nc=3, stride 8 -> -8.25.
    """
    return math.log(5 / max(int(nc), 1) / (640 / float(stride)) ** 2)


def init_contrastive_prior(model: torch.nn.Module) -> list[float]:
    """Start every YOLO-World contrastive head from a class prior, in place (scratch models only).

    ``BNContrastiveHead`` computes ``exp(logit_scale) * (BN(x) . w) + bias`` with ``w`` the unit
    text embedding and starts at bias -10, logit_scale -1: values chosen for fine-tuning pretrained
    weights. From scratch, ultralytics' AdamW (lr ~0.0014) barely moves them: every score stays
    ~1e-4, and a confident score needs the 512-d feature almost parallel to ``w`` (factor 0.37).
    Here the bias becomes :func:`contrastive_prior_bias` (as ``YOLOEDetect.bias_init`` does) and
    logit_scale :data:`SCRATCH_LOGIT_SCALE` (factor 2: the initial logits spread by ~2 around the
    prior). Returns the new biases (one per head level; empty when the model has none).
    """
    out: list[float] = []
    for head in model.modules():
        cv4 = getattr(head, "cv4", None)
        stride = getattr(head, "stride", None)
        if type(head).__name__ != "WorldDetect" or cv4 is None or stride is None:
            continue
        for level, contrastive in zip(range(len(cv4)), cv4, strict=True):
            bias = getattr(contrastive, "bias", None)
            if isinstance(bias, torch.nn.Parameter):
                value = contrastive_prior_bias(head.nc, float(stride[level]))
                with torch.no_grad():
                    bias.fill_(value)
                    scale = getattr(contrastive, "logit_scale", None)
                    if isinstance(scale, torch.nn.Parameter):
                        scale.fill_(SCRATCH_LOGIT_SCALE)
                out.append(value)
    return out


class TextBankCallback:
    """Carries the :class:`TextEmbeddings` inside ``trainer.callbacks`` (pickled to DDP workers)."""

    def __init__(self, bank: TextEmbeddings) -> None:
        self.bank = bank

    def __call__(self, trainer: Any) -> None:
        trainer.text_bank = self.bank


class TransposeCallback:
    """Carries the ``transpose`` probability inside ``trainer.callbacks`` (pickled to DDP workers)."""

    def __init__(self, p: float) -> None:
        self.p = float(p)

    def __call__(self, trainer: Any) -> None:
        trainer.transpose = self.p


def _callbacks_with_transpose(callbacks: dict | None, transpose: float | None) -> dict:
    """ultralytics' default callbacks, replaced per event by ``callbacks``, with one
    :class:`TransposeCallback` at ``on_pretrain_routine_start`` when ``transpose`` is given (a DDP
    worker passes None and keeps the one it received)."""
    cbs = ul_callbacks.get_default_callbacks()
    for event, fns in (callbacks or {}).items():
        cbs[event] = list(fns)
    if transpose is not None:
        _carry(cbs, TransposeCallback(transpose))
    return cbs


def _carry(cbs: dict, callback: Any) -> None:
    """Make ``callback`` the one callback of its type at ``on_pretrain_routine_start`` (in place)."""
    kept = [cb for cb in cbs["on_pretrain_routine_start"] if not isinstance(cb, type(callback))]
    cbs["on_pretrain_routine_start"] = kept + [callback]


def set_ema_classes_from_bank(trainer: Any) -> None:
    """Replacement of ultralytics' ``on_pretrain_routine_end``: EMA ``set_classes`` from the file.

    Sets ``ema.txt_feats`` = FloatTensor[1, nc, D] for the first synonym of each dataset class and
    the head's ``nc``, exactly what ``WorldModel.set_classes`` would do with CLIP.
    """
    names = [str(n).split("/", 1)[0].strip() for n in trainer.data["names"].values()]
    ema = trainer.ema.ema
    feats = trainer.text_bank.features_for(names, source=trainer.text_bank_source)
    ema.txt_feats = feats.unsqueeze(0).to(next(ema.parameters()).device)
    ema.model[-1].nc = len(names)


def write_metrics_csv(trainer: Any) -> None:
    """``on_fit_epoch_end``: RUN/metrics.csv = ultralytics' results.csv, one row per epoch, written atomically."""
    csv = Path(trainer.csv)
    if not csv.is_file():
        return
    lines = [
        ",".join(c.strip() for c in line.split(",")) for line in csv.read_text().splitlines() if line.strip()
    ]
    atomic_write_text(Path(trainer.save_dir) / "metrics.csv", "\n".join(lines) + "\n")


def log_epoch(trainer: Any) -> None:
    """``on_fit_epoch_end``: one INFO line per epoch (train losses, val mAP50, mAP50-95), as the
    classifier logs, unless ultralytics shows its own progress (its logger at INFO: a terminal)."""
    if logging.getLogger("ultralytics").getEffectiveLevel() <= logging.INFO or trainer.tloss is None:
        return
    losses = trainer.label_loss_items(trainer.tloss, prefix="train")
    m = trainer.metrics or {}
    log.info(
        "epoch %d/%d: %s val mAP50 %.4f mAP50-95 %.4f",
        trainer.epoch + 1,
        trainer.epochs,
        " ".join(f"{k.removeprefix('train/')} {float(v):.4f}" for k, v in losses.items()),
        float(m.get("metrics/mAP50(B)", math.nan)),
        float(m.get("metrics/mAP50-95(B)", math.nan)),
    )


@contextlib.contextmanager
def ultralytics_progress(show: bool) -> Iterator[None]:
    """With ``show`` (bars enabled: a terminal), ultralytics' own progress bars and lines for the
    block: its logger at INFO (its bars are off above INFO); restored on exit."""
    logger = logging.getLogger("ultralytics")
    saved = logger.level
    if show:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(saved)


class _OfflineMixin:
    """Common guards: no integration callbacks, local-only font/AMP checks, metrics.csv and a log
    line per epoch."""

    def _finish_init(self) -> None:
        strip_integration_callbacks(self)
        for fn in (write_metrics_csv, log_epoch):
            if fn not in self.callbacks["on_fit_epoch_end"]:
                self.callbacks["on_fit_epoch_end"].append(fn)

    def run_callbacks(self, event: str) -> None:
        # BaseTrainer.__init__ adds and runs integration callbacks before a subclass can remove them
        for cb in self.callbacks.get(event, []):
            if not is_integration_callback(cb):
                cb(self)

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        """ultralytics' dataset; in training, plus :class:`RandomTranspose` when ``transpose`` > 0."""
        from defectkit.finetune.yolo_world.augment import add_transpose

        dataset = super().build_dataset(img_path, mode, batch)
        if mode == "train":
            add_transpose(dataset, getattr(self, "transpose", 0.0))
        return dataset

    def get_validator(self):
        validator = super().get_validator()
        strip_integration_callbacks(validator)
        return validator

    def train(self) -> None:
        with offline_guards(), keep_torch_threads():  # the final validation calls select_device again
            return super().train()


class OfflineDetectionTrainer(_OfflineMixin, DetectionTrainer):
    """Closed-set ultralytics detector trainer (the plain YOLO baseline), offline; ``transpose`` as
    in :class:`TextFileWorldTrainer`."""

    def __init__(
        self,
        cfg=DEFAULT_CFG,
        overrides: dict | None = None,
        _callbacks: dict | None = None,
        transpose: float | None = None,
    ) -> None:
        cbs = _callbacks_with_transpose(_callbacks, transpose)
        with offline_guards(), keep_torch_threads():  # train on every core the caller allowed
            super().__init__(cfg, overrides, cbs)
        self._finish_init()


class TextFileWorldTrainer(_OfflineMixin, WorldTrainer):
    """``WorldTrainer`` whose text features come from a :class:`TextEmbeddings`, never from CLIP.

    ``text_embeddings`` is required for a new trainer; DDP workers get it back from the callbacks,
    as they get ``transpose`` (probability of :class:`~defectkit.finetune.yolo_world.augment.RandomTranspose`
    in training; None keeps what the callbacks carry, 0 when they carry nothing).
    """

    def __init__(
        self,
        cfg=DEFAULT_CFG,
        overrides: dict | None = None,
        _callbacks: dict | None = None,
        text_embeddings: TextEmbeddings | None = None,
        text_embeddings_source: str = "text embeddings file",
        transpose: float | None = None,
    ) -> None:
        cbs = _callbacks_with_transpose(_callbacks, transpose)
        if text_embeddings is not None:
            _carry(cbs, TextBankCallback(text_embeddings))
        hooks = [cb for cb in cbs["on_pretrain_routine_start"] if isinstance(cb, TextBankCallback)]
        if not hooks:
            raise InputError("YOLO-World training needs --text-embeddings FILE (see `defectkit embed-text`)")
        self.text_bank: TextEmbeddings = hooks[-1].bank
        self.text_bank_source = text_embeddings_source
        with offline_guards(), keep_torch_threads():  # train on every core the caller allowed
            super().__init__(cfg, overrides, cbs)
        self._finish_init()

    def get_model(self, cfg=None, weights=None, verbose: bool = True):
        """The ``WorldModel``; built from a config (``weights`` None: training from scratch), its
        contrastive heads start with a class-prior bias (:func:`init_contrastive_prior`), as YOLOE
        does. With ``weights`` (a ``.pt``, or resuming) every loaded parameter stays untouched."""
        model = super().get_model(cfg, weights, verbose)
        if not weights:
            log.info(
                "from-scratch YOLO-World: contrastive head bias set to the class prior %s",
                init_contrastive_prior(model),
            )
        events = self.callbacks["on_pretrain_routine_end"]
        self.callbacks["on_pretrain_routine_end"] = [cb for cb in events if cb is not _ul_set_ema_classes]
        if set_ema_classes_from_bank not in self.callbacks["on_pretrain_routine_end"]:
            self.callbacks["on_pretrain_routine_end"].append(set_ema_classes_from_bank)
        # placeholder features until the EMA callback sets the real ones (never random in a checkpoint)
        names = [str(n).split("/", 1)[0].strip() for n in self.data["names"].values()]
        model.txt_feats = self.text_bank.features_for(names, source=self.text_bank_source).unsqueeze(0)
        return model

    def set_text_embeddings(self, datasets: list[Any], batch: int | None) -> None:
        """``{text: FloatTensor[D]}`` for every synonym the training datasets can sample."""
        texts = sorted({t for ds in datasets for t in getattr(ds, "category_names", ())})
        feats = self.text_bank.features_for(texts, source=self.text_bank_source)
        mapping = dict(zip(texts, feats, strict=True))
        # RandomLoadText samples unstripped synonyms ("a / b" -> " b"); category_names are stripped
        for name in self.data["names"].values():
            for part in str(name).split("/"):
                if part.strip() in mapping:
                    mapping.setdefault(part, mapping[part.strip()])
        self.text_embeddings = mapping

    def generate_text_embeddings(
        self, texts: list[str], batch: int, cache_dir: Path
    ) -> dict[str, torch.Tensor]:
        """Never builds CLIP and never writes a cache next to the dataset: look the texts up in the file."""
        feats = self.text_bank.features_for(list(texts), source=self.text_bank_source)
        return dict(zip(texts, feats, strict=True))
