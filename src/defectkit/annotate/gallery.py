"""``defectkit annotate gallery``: one self-contained HTML review page (no network access).

Thumbnails are inline ``data:`` JPEGs; each links to its full-size overlay PNG written next to the
page in ``<stem>_overlays/``. Cards are sorted by disagreement (misses, then lowest IoU first) and
filterable by defect type and status with a few lines of inline JavaScript.
"""

from __future__ import annotations

import base64
import html
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from defectkit.annotate.agreement import STATUSES
from defectkit.annotate.review import OverlayConfig, OverlayResult, render_overlays
from defectkit.fileio import atomic_write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GalleryConfig:
    """Gallery inputs: the overlay settings (its ``output`` is ignored) plus the page's own.

    html: output page path. thumb_side: longest thumbnail side in pixels. title: page title.
    """

    overlay: OverlayConfig
    html: str
    thumb_side: int = 256
    title: str = "defectkit review gallery"

    def __post_init__(self) -> None:
        if not 16 <= self.thumb_side <= 2048:
            raise ValueError(f"--thumb-size must be in [16, 2048], got {self.thumb_side}")
        if not str(self.html).lower().endswith((".html", ".htm")):
            raise ValueError(f"-o {self.html}: the gallery output must be an .html file")


@dataclass(frozen=True)
class GalleryItem:
    """One card: texts to show, the thumbnail ``src`` (data URI) and the overlay ``href``."""

    name: str
    defect_type: str
    status: str
    iou: float | None
    max_score: float
    n_gt: int
    n_pred: int
    thumb_src: str
    href: str


_CSS = """body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa;color:#222}
header{margin-bottom:1em}.controls label{margin-right:1em}
#cards{display:flex;flex-wrap:wrap;gap:10px}
.card{margin:0;background:#fff;border:1px solid #ccc;border-radius:4px;padding:4px;width:min-content}
.card img{display:block;image-rendering:auto}.card figcaption{font-size:12px;line-height:1.3}
.card[hidden]{display:none}.miss{border-color:#d62728}.false_positive{border-color:#ff7f0e}
.low_iou{border-color:#bcbd22}.status{font-weight:bold}"""

# Filters: show a card when both selects accept it; the counter says how many are shown;
# data-ready on <body> tells a headless browser test that the script ran to the end.
_JS = """(function () {
  var defect = document.getElementById("defect-filter");
  var status = document.getElementById("status-filter");
  var shown = document.getElementById("shown");
  function apply() {
    var n = 0;
    var cards = document.querySelectorAll("#cards .card");
    for (var i = 0; i < cards.length; i++) {
      var c = cards[i];
      var ok = (defect.value === "" || c.dataset.defect === defect.value) &&
               (status.value === "" || c.dataset.status === status.value);
      c.hidden = !ok;
      if (ok) { n++; }
    }
    shown.textContent = String(n);
  }
  // A link such as gallery.html#defect=broken_large&status=miss opens with those filters set.
  var params = new URLSearchParams(window.location.hash.slice(1));
  if (params.has("defect")) { defect.value = params.get("defect"); }
  if (params.has("status")) { status.value = params.get("status"); }
  defect.addEventListener("change", apply);
  status.addEventListener("change", apply);
  apply();
  document.body.setAttribute("data-ready", "1");
})();"""


def _options(values: Sequence[str], label_all: str) -> str:
    opts = [f'<option value="">{html.escape(label_all)}</option>']
    opts += [f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values]
    return "".join(opts)


def _card(item: GalleryItem) -> str:
    e = html.escape
    iou = "n/a" if item.iou is None else f"{item.iou:.3f}"
    return (
        f'<figure class="card {e(item.status)}" data-defect="{e(item.defect_type)}" data-status="{e(item.status)}" '
        f'data-iou="{iou}"><a href="{e(item.href)}"><img src="{e(item.thumb_src)}" alt="{e(item.name)}"></a>'
        f'<figcaption>{e(item.name)}<br>{e(item.defect_type)} &middot; <span class="status">'
        f"{e(item.status.replace('_', ' '))}</span><br>IoU {iou} &middot; score {item.max_score:.2f} "
        f"&middot; GT {item.n_gt} / pred {item.n_pred}</figcaption></figure>"
    )


def gallery_html(items: Sequence[GalleryItem], title: str, subtitle: str = "") -> str:
    """The page's HTML text; ``items`` are shown in the given order (pure function)."""
    e = html.escape
    counts = Counter(i.status for i in items)
    summary = ", ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in STATUSES if counts[s])
    defects = sorted({i.defect_type for i in items})
    statuses = [s for s in STATUSES if counts[s]]
    cards = "\n".join(_card(i) for i in items)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        # CSP: the page may show inline images only and may not fetch anything.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
        f"<title>{e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<header>\n<h1>{e(title)}</h1>\n"
        f"<p>{e(subtitle)}</p>\n<p>{len(items)} images: {e(summary)}. Sorted by disagreement (misses, then "
        "lowest IoU, first). Outlines: ground truth; fills: predictions. Click a thumbnail for the full-size "
        'overlay.</p>\n<div class="controls">'
        f'<label>defect type <select id="defect-filter">{_options(defects, "all")}</select></label>'
        f'<label>status <select id="status-filter">{_options(statuses, "all")}</select></label>'
        f'<span><span id="shown">{len(items)}</span> shown</span></div>\n</header>\n'
        f'<main id="cards">\n{cards}\n</main>\n<script>\n{_JS}\n</script>\n</body>\n</html>\n'
    )


def gallery_items(results: Sequence[OverlayResult], page_dir: Path) -> list[GalleryItem]:
    """Cards for rendered overlays (hrefs relative to the page's folder, '/' separators)."""
    items = []
    for r in results:
        a = r.agreement
        src = "data:image/jpeg;base64," + base64.b64encode(r.thumbnail_jpeg or b"").decode("ascii")
        href = Path(os.path.relpath(Path(r.overlay).resolve(), page_dir.resolve())).as_posix()
        items.append(
            GalleryItem(a.name, a.defect_type, a.status, a.iou, a.max_score, a.n_gt, a.n_pred, src, href)
        )
    return items


def write_gallery(cfg: GalleryConfig, subtitle: str = "") -> Path:
    """Render overlays into ``<html stem>_overlays/`` and write the page; return its path."""
    page = Path(cfg.html)
    overlay_dir = page.parent / f"{page.stem}_overlays"
    ov = replace(cfg.overlay, output=str(overlay_dir))
    results = render_overlays(ov, thumb_side=cfg.thumb_side)
    if not subtitle:
        subtitle = f"ground truth {cfg.overlay.coco}" + (
            f"; predictions {cfg.overlay.pred} (score >= {cfg.overlay.score_threshold})"
            if cfg.overlay.pred
            else ""
        )
    atomic_write_text(page, gallery_html(gallery_items(results, page.parent), cfg.title, subtitle))
    log.info("wrote %s (%d images)", page, len(results))
    return page
