"""``defectkit weights fetch``: download known weights files on purpose, checked and atomic.

The only place defectkit touches the network. Each file is streamed into a temp file in the
destination folder while its sha256 is computed, checked against what the publisher states (full
hash, or torchvision's 8-hex prefix) and against the server's Content-Length, then moved into place;
a failed check leaves no file behind. ``DEFECTKIT_WEIGHTS_URL`` replaces every file's base URL
(``$DEFECTKIT_WEIGHTS_URL/<file>``): a mirror, or a local test server.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from defectkit.errors import DefectkitError, InputError
from defectkit.fileio import atomic_open, ensure_dir, sha256_file
from defectkit.progress import byte_bar
from defectkit.weights.registry import REGISTRY, WeightsFile, lookup, weights_dir

log = logging.getLogger(__name__)

URL_ENV = "DEFECTKIT_WEIGHTS_URL"
CHUNK = 1 << 20


@dataclass(frozen=True)
class FetchResult:
    name: str
    path: Path
    sha256: str
    status: str  # "fetched" | "present"
    verified: bool  # False when the publisher states no hash


def source_url(entry: WeightsFile) -> str:
    base = os.environ.get(URL_ENV)
    return f"{base.rstrip('/')}/{entry.file}" if base else entry.url


def check_hash(entry: WeightsFile, digest: str) -> bool:
    """True when ``digest`` matches what is published; raises nothing (callers word the error)."""
    if entry.sha256:
        return digest == entry.sha256
    if entry.sha256_prefix:
        return digest.startswith(entry.sha256_prefix)
    return True


def _entries(names: Sequence[str]) -> list[WeightsFile]:
    entries, unknown = [], []
    for n in names:
        entry = lookup(n)
        (entries if entry else unknown).append(entry or n)
    if unknown:
        raise InputError(
            f"unknown weights name(s) {unknown}; `defectkit weights list` shows the known ones "
            f"({', '.join(REGISTRY)})"
        )
    return entries


def _download(entry: WeightsFile, dest: Path, timeout: float) -> str:
    url = source_url(entry)
    log.info("downloading %s from %s", entry.file, url)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (URL from the registry)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DefectkitError(f"{entry.name}: cannot download {url} ({getattr(exc, 'reason', exc)})") from exc
    h, got = hashlib.sha256(), 0
    with response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with atomic_open(dest, "wb") as fh, byte_bar(total, entry.file) as bar:
            while block := response.read(CHUNK):
                fh.write(block)
                h.update(block)
                got += len(block)
                bar.update(len(block))
            digest = h.hexdigest()
            if total is not None and got != total:
                raise DefectkitError(
                    f"{entry.name}: {url} ended after {got} of {total} bytes; nothing written"
                )
            if not check_hash(entry, digest):
                raise DefectkitError(
                    f"{entry.name}: sha256 of {url} is {digest}, expected "
                    f"{entry.sha256 or entry.sha256_prefix + '...'}; nothing written"
                )
    return digest


def fetch_weights(
    names: Sequence[str], dest: str | os.PathLike | None = None, *, force: bool = False, timeout: float = 60.0
) -> list[FetchResult]:
    """Download each named file into ``dest`` (default :func:`weights_dir`); a file already there
    that passes the hash check is kept. Unknown names fail before anything is downloaded."""
    entries = _entries(names)
    folder = ensure_dir(dest if dest is not None else weights_dir())
    results = []
    for entry in entries:
        path = folder / entry.file
        if path.is_file() and not force:
            digest = sha256_file(path)
            if check_hash(entry, digest):
                results.append(FetchResult(entry.name, path, digest, "present", entry.verifiable()))
                continue
            log.warning("%s: sha256 %s does not match; downloading it again", path, digest)
        digest = _download(entry, path, timeout)
        if not entry.verifiable():
            log.warning("%s: no published sha256 to check against; its sha256 is %s", entry.file, digest)
        results.append(FetchResult(entry.name, path, digest, "fetched", entry.verifiable()))
    return results
