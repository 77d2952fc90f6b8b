"""`defectkit annotate gallery`: a self-contained page, sorted by disagreement, every listed image
present; rendered in headless Chromium when one is installed."""

from __future__ import annotations

import base64
import csv
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from defectkit.annotate.gallery import GalleryItem, gallery_html


class _Page(HTMLParser):
    """Collects cards (figure attrs + img src + a href), select options and every URL attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict] = []
        self.options: dict[str, list[str]] = {}
        self.urls: list[str] = []
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                self.urls.append(a[key])
        if tag == "figure":
            self.cards.append(dict(a))
        elif tag == "img" and self.cards:
            self.cards[-1]["img"] = a["src"]
        elif tag == "a" and self.cards:
            self.cards[-1]["href"] = a["href"]
        elif tag == "select":
            self._select = a["id"]
            self.options[self._select] = []
        elif tag == "option" and self._select:
            self.options[self._select].append(a["value"])

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def gallery(gt_coco, outcomes, tmp_path_factory) -> Path:
    from defectkit.cli import main

    pred, _ = outcomes
    page = tmp_path_factory.mktemp("gallery") / "review" / "gallery.html"
    assert (
        main(
            [
                "-q",
                "annotate",
                "gallery",
                "--coco",
                str(gt_coco),
                "--pred",
                str(pred),
                "-o",
                str(page),
                "--thumb-size",
                "48",
            ]
        )
        == 0
    )
    return page


def test_gallery_lists_existing_images_in_disagreement_order(gallery, outcomes, tiny_dataset):
    import cv2

    _, expected = outcomes
    page = _parse(gallery.read_text(encoding="utf-8"))
    assert len(page.cards) == len(expected)
    for card in page.cards:
        assert card["img"].startswith("data:image/jpeg;base64,")
        thumb = cv2.imdecode(np.frombuffer(base64.b64decode(card["img"].split(",", 1)[1]), np.uint8), 1)
        assert thumb is not None and max(thumb.shape[:2]) == 48
        target = gallery.parent / card["href"]
        assert target.is_file(), card["href"]
        assert cv2.imread(str(target)).shape[:2] == (64, 64)  # full-size overlay
    assert all(u.startswith("data:") or not u.startswith(("http:", "https:", "//")) for u in page.urls)
    statuses = [c["data-status"] for c in page.cards]
    with open(gallery.parent / "gallery_overlays" / "agreement.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [Path(c["href"]).name for c in page.cards] == [r["overlay"] for r in table]
    rank = {"miss": 0, "false_positive": 1, "low_iou": 2, "match": 3, "true_negative": 4}
    assert [rank[s] for s in statuses] == sorted(rank[s] for s in statuses)
    ious = [float(c["data-iou"]) for c in page.cards if c["data-status"] in ("low_iou", "match")]
    assert ious == sorted(ious)
    assert sorted(page.options["defect-filter"]) == [
        "",
        "broken_large",
        "broken_small",
        "contamination",
        "good",
    ]


def test_gallery_html_escapes_text_and_blocks_network():
    item = GalleryItem('<b>"x"</b>', "a&b", "miss", None, 0.5, 1, 0, "data:image/jpeg;base64,AA==", "o/x.png")
    text = gallery_html([item], "t<i>", "sub")
    assert "<b>" not in text and "&lt;b&gt;" in text and "a&amp;b" in text and "t&lt;i&gt;" in text
    assert "default-src 'none'" in text and "img-src data:" in text


def test_gallery_rejects_non_html_output(gt_coco, run_cli, tmp_path):
    code, _, err = run_cli("annotate", "gallery", "--coco", gt_coco, "-o", tmp_path / "g.png")
    assert code == 2 and "must be an .html file" in err


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="no chromium on this machine")
def test_gallery_renders_in_headless_chromium_without_console_errors(gallery):
    url = gallery.resolve().as_uri() + "#defect=broken_small"
    proc = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=2000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console  # no script error, no CSP violation, no log noise
    dom = _parse(proc.stdout)
    assert '<body data-ready="1">' in proc.stdout, "the inline script ran to the end"
    shown = [c for c in dom.cards if "hidden" not in c]
    assert shown and all(c["data-defect"] == "broken_small" for c in shown)
    assert len(shown) == sum(c["data-defect"] == "broken_small" for c in dom.cards)
