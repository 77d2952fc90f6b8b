"""The pretrained weights files defectkit knows by name, and where a name resolves to.

A weights flag or PIPELINE key takes a path, or one of these names (``sam_vit_b``) or file names
(``sam_vit_b_01ec64.pth``); a name is looked up in :func:`weights_dir` only, which
``defectkit weights fetch NAME`` fills. Nothing here downloads. Hashes and sizes are what the
publisher states: the full sha256 where it is published (CLIP puts it in its URL), the 8-hex sha256
prefix torchvision puts in its file names, ``None`` where nothing is published (SAM, ultralytics).
Stdlib only: the CLI imports this module to print ``--help`` and ``weights list``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from defectkit.errors import MissingWeightsError

#: ultralytics' own release tag for its assets (``ultralytics.utils.downloads.attempt_download_asset``)
ULTRALYTICS_RELEASE = "https://github.com/ultralytics/assets/releases/download/v8.4.0"
SAM_BASE = "https://dl.fbaipublicfiles.com/segment_anything"
TORCHVISION_BASE = "https://download.pytorch.org/models"
CLIP_SHA256 = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"


@dataclass(frozen=True)
class WeightsFile:
    """One official weights file. ``size_mb``: approximate size in MB (None: not published);
    ``sha256``: the full hex digest when published; ``sha256_prefix``: the leading hex digits the
    publisher's file name carries (torchvision); ``kind``: which defectkit flag takes it."""

    name: str
    file: str
    url: str
    kind: str
    licence: str
    size_mb: float | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None

    def verifiable(self) -> bool:
        return bool(self.sha256 or self.sha256_prefix)


def _ultralytics(stem: str, kind: str) -> WeightsFile:
    return WeightsFile(stem, f"{stem}.pt", f"{ULTRALYTICS_RELEASE}/{stem}.pt", kind, "AGPL-3.0")


def _sam(size: str, suffix: str, size_mb: float) -> WeightsFile:
    file = f"sam_vit_{size}_{suffix}.pth"
    return WeightsFile(f"sam_vit_{size}", file, f"{SAM_BASE}/{file}", "sam", "Apache-2.0", size_mb)


def _resnet(arch: str, prefix: str, size_mb: float) -> WeightsFile:
    file = f"{arch}-{prefix}.pth"
    return WeightsFile(
        arch,
        file,
        f"{TORCHVISION_BASE}/{file}",
        "classifier",
        "BSD-3-Clause (torchvision; trained on ImageNet-1k)",
        size_mb,
        sha256_prefix=prefix,
    )


_ENTRIES: tuple[WeightsFile, ...] = (
    *(_ultralytics(f"yolov8{k}-worldv2", "yolo-world") for k in "smlx"),
    *(_ultralytics(f"yolov8{k}", "yolo") for k in "nsmlx"),
    WeightsFile(
        "clip_vit_b_32",
        "ViT-B-32.pt",
        f"https://openaipublic.azureedge.net/clip/models/{CLIP_SHA256}/ViT-B-32.pt",
        "clip",
        "MIT",
        338.0,
        sha256=CLIP_SHA256,
    ),
    _sam("b", "01ec64", 358.0),
    _sam("l", "0b3195", 1200.0),
    _sam("h", "4b8939", 2400.0),
    # torchvision's DEFAULT ImageNet weights of each architecture (sizes: the weights enums' _file_size)
    _resnet("resnet18", "f37072fd", 44.661),
    _resnet("resnet34", "b627a593", 83.275),
    _resnet("resnet50", "11ad3fa6", 97.79),
)

#: name -> entry, in listing order
REGISTRY: dict[str, WeightsFile] = {w.name: w for w in _ENTRIES}


def defectkit_home() -> Path:
    """``$DEFECTKIT_HOME`` (default ``~/.cache/defectkit``)."""
    return Path(os.environ.get("DEFECTKIT_HOME") or Path.home() / ".cache" / "defectkit").expanduser()


def weights_dir() -> Path:
    """Where names resolve and ``defectkit weights fetch`` writes: ``$DEFECTKIT_HOME/weights``."""
    return defectkit_home() / "weights"


def lookup(value: str | os.PathLike | None) -> WeightsFile | None:
    """The entry named ``value`` (a registry name, or a bare official file name), else None."""
    if value is None:
        return None
    text = str(value)
    if text in REGISTRY:
        return REGISTRY[text]
    return next((w for w in REGISTRY.values() if w.file == text), None)


def fetch_command(entry: WeightsFile) -> str:
    return f"defectkit weights fetch {entry.name}"


def named_path(value: str | os.PathLike) -> Path | None:
    """Where the name ``value`` resolves (``weights_dir()/<file>``), whether or not it is there yet;
    None when ``value`` is an existing file or not a known name."""
    entry = lookup(value)
    if entry is None or Path(value).is_file():
        return None
    return weights_dir() / entry.file


def resolve_weights(value: str | os.PathLike, flag: str) -> str:
    """A weights argument as the file to load: an existing path as given; a known name (or official
    file name) from :func:`weights_dir`; anything else unchanged (the caller reports it).

    Raises MissingWeightsError with the ``defectkit weights fetch`` command for a name not fetched."""
    path = named_path(value)
    if path is None:
        return str(value)
    if not path.is_file():
        entry = lookup(value)
        raise MissingWeightsError(
            f"{flag} {value}: {path.name} is not in {path.parent}; `{fetch_command(entry)}` downloads it "
            f"from {entry.url} (nothing is downloaded implicitly)"
        )
    return str(path)


def require_weights(value: str | os.PathLike, what: str) -> str:
    """The file a weights argument names (a path, or a known name resolved from the weights folder),
    checked to exist before any heavy import: MissingWeightsError with the fetch command for a name
    not fetched yet, InputError naming the file otherwise."""
    from defectkit.fileio import require_file

    return str(require_file(resolve_weights(value, what), what))


def missing_hint(path: str | os.PathLike) -> str:
    """`` (defectkit weights fetch NAME)`` when ``path``'s file name is a known official file, else ''."""
    entry = lookup(Path(path).name)
    return f" (`{fetch_command(entry)}`)" if entry else ""
