"""``defectkit weights list/fetch`` and weights names: a local HTTP server on 127.0.0.1 stands in
for the publishers (DEFECTKIT_WEIGHTS_URL), so nothing here reaches the internet."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from defectkit.errors import MissingWeightsError
from defectkit.weights import registry
from defectkit.weights.registry import REGISTRY, WeightsFile, resolve_weights, weights_dir

PAYLOAD = os.urandom(3 * (1 << 20) + 123)  # more than one download chunk


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """A threaded HTTP server on 127.0.0.1 (a free port) serving ``folder``; stopped on exit."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A local mirror holding ``toy-1234abcd.pth``, with DEFECTKIT_WEIGHTS_URL pointing at it."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "toy-1234abcd.pth").write_bytes(PAYLOAD)
    with serve(folder) as url:
        monkeypatch.setenv("DEFECTKIT_WEIGHTS_URL", url)
        yield folder


def register_toy(monkeypatch: pytest.MonkeyPatch, **hashes: str | None) -> WeightsFile:
    entry = WeightsFile(
        "toy",
        "toy-1234abcd.pth",
        "https://example.invalid/toy-1234abcd.pth",
        "classifier",
        "MIT",
        3.1,
        **hashes,
    )
    monkeypatch.setitem(REGISTRY, "toy", entry)
    return entry


def test_registry_lists_the_official_files_with_their_urls() -> None:
    expect = {
        "yolov8s-worldv2": "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolov8s-worldv2.pt",
        "yolov8s": "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolov8s.pt",
        "sam_vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        "sam_vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        "clip_vit_b_32": "https://openaipublic.azureedge.net/clip/models/"
        "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    }
    for name, url in expect.items():
        assert REGISTRY[name].url == url
    assert {f"yolov8{k}-worldv2" for k in "smlx"} | {"sam_vit_l", "resnet34", "resnet50"} <= set(REGISTRY)
    # CLIP's full hash is the folder of its URL; torchvision's prefix is in the file name
    assert REGISTRY["clip_vit_b_32"].sha256 == REGISTRY["clip_vit_b_32"].url.split("/")[-2]
    assert REGISTRY["resnet50"].sha256_prefix == "11ad3fa6"
    assert REGISTRY["sam_vit_b"].sha256 is None and REGISTRY["sam_vit_b"].licence == "Apache-2.0"


def test_registry_matches_torchvision_default_weights() -> None:
    from torchvision import models

    for arch in ("resnet18", "resnet34", "resnet50"):
        assert REGISTRY[arch].url == models.get_model_weights(arch).DEFAULT.url


def test_fetch_verifies_the_full_hash_and_is_atomic(run_cli, mirror: Path, monkeypatch, tmp_path) -> None:
    register_toy(monkeypatch, sha256=hashlib.sha256(PAYLOAD).hexdigest())
    code, out, err = run_cli("weights", "fetch", "toy")
    assert code == 0, err
    target = weights_dir() / "toy-1234abcd.pth"
    assert target.read_bytes() == PAYLOAD
    assert "toy: fetched" in out and "sha256 checked" in out
    assert sorted(p.name for p in target.parent.iterdir()) == ["toy-1234abcd.pth"]
    code, out, _ = run_cli("weights", "fetch", "toy-1234abcd.pth")  # the file name works too
    assert code == 0 and "toy: present" in out


@pytest.mark.parametrize("hashes", [{"sha256": "0" * 64}, {"sha256_prefix": "deadbeef"}])
def test_a_wrong_hash_leaves_no_file_behind(run_cli, mirror: Path, monkeypatch, tmp_path, hashes) -> None:
    register_toy(monkeypatch, **hashes)
    dest = tmp_path / "dest"
    code, out, err = run_cli("weights", "fetch", "toy", "--dir", dest)
    assert code == 1 and out == ""
    assert "toy: sha256 of http://127.0.0.1:" in err and "nothing written" in err
    assert err.count("defectkit: error") == 1 and "Traceback" not in err
    assert list(dest.iterdir()) == []


def test_the_torchvision_style_prefix_is_checked(run_cli, mirror: Path, monkeypatch, tmp_path) -> None:
    register_toy(monkeypatch, sha256_prefix=hashlib.sha256(PAYLOAD).hexdigest()[:8])
    code, out, err = run_cli("weights", "fetch", "toy", "--dir", tmp_path / "d")
    assert code == 0, err
    assert (tmp_path / "d" / "toy-1234abcd.pth").read_bytes() == PAYLOAD


def test_unpublished_hash_is_reported_not_invented(run_cli, mirror: Path, monkeypatch, tmp_path) -> None:
    register_toy(monkeypatch)
    code, out, err = run_cli("weights", "fetch", "toy", "--dir", tmp_path / "d")
    assert code == 0, err
    assert f"no published hash; sha256 {hashlib.sha256(PAYLOAD).hexdigest()}" in out


def test_unknown_names_and_unreachable_servers(run_cli, monkeypatch, tmp_path) -> None:
    code, _, err = run_cli("weights", "fetch", "sam_vit_b", "nope")
    assert code == 2 and "unknown weights name(s) ['nope']" in err
    with serve(tmp_path) as url:  # an empty mirror: 404
        monkeypatch.setenv("DEFECTKIT_WEIGHTS_URL", url)
        code, _, err = run_cli("weights", "fetch", "sam_vit_b")
    assert code == 1 and "sam_vit_b: cannot download http://127.0.0.1:" in err
    assert not (weights_dir() / "sam_vit_b_01ec64.pth").exists()


def test_list_shows_every_file_and_whether_it_is_present(run_cli) -> None:
    weights_dir().mkdir(parents=True)
    (weights_dir() / "sam_vit_b_01ec64.pth").write_bytes(b"x")
    code, out, _ = run_cli("weights", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)["weights"]}
    assert code == 0 and rows["sam_vit_b"]["present"] and not rows["sam_vit_l"]["present"]
    assert rows["resnet18"]["licence"].startswith("BSD-3-Clause")
    code, out, _ = run_cli("weights", "list")
    assert "* sam_vit_b" in out and "sha256: f37072fd..." in out


def test_names_resolve_from_the_weights_folder_only(tmp_path, monkeypatch) -> None:
    with pytest.raises(MissingWeightsError, match="`defectkit weights fetch sam_vit_b` downloads it"):
        resolve_weights("sam_vit_b", "--checkpoint")
    with pytest.raises(MissingWeightsError, match="defectkit weights fetch yolov8s-worldv2"):
        resolve_weights("yolov8s-worldv2.pt", "--model")
    weights_dir().mkdir(parents=True)
    (weights_dir() / "sam_vit_b_01ec64.pth").write_bytes(b"x")
    assert resolve_weights("sam_vit_b", "-") == str(weights_dir() / "sam_vit_b_01ec64.pth")
    assert resolve_weights("sam_vit_b_01ec64.pth", "-") == str(weights_dir() / "sam_vit_b_01ec64.pth")
    local = tmp_path / "yolov8s.pt"  # an existing path wins over the name
    local.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert resolve_weights("yolov8s.pt", "-") == "yolov8s.pt"
    assert resolve_weights("my/own.pt", "-") == "my/own.pt"
    monkeypatch.setenv("DEFECTKIT_HOME", str(tmp_path / "elsewhere"))
    assert registry.weights_dir() == tmp_path / "elsewhere" / "weights"


def test_clip_entry_is_the_url_the_clip_package_downloads() -> None:
    """clip (clip-anytorch) checks the sha256 in its own URL; the registry and embed-text use the same."""
    import sys

    from defectkit.finetune.yolo_world.text_embeddings import (
        CLIP_WEIGHTS_SHA256,
        CLIP_WEIGHTS_URL,
        import_clip,
    )

    import_clip()  # clip needs pkg_resources at import; defectkit supplies a stand-in
    url = sys.modules["clip.clip"]._MODELS["ViT-B/32"]
    assert REGISTRY["clip_vit_b_32"].url == url == CLIP_WEIGHTS_URL
    assert url.split("/")[-2] == CLIP_WEIGHTS_SHA256
