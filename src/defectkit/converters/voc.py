"""Pascal VOC XML box annotations (pure text builder).

VOC boxes are 1-based inclusive pixel indices: an instance covering 0-based columns x0..x1-1
(``bbox_xyxy`` x0, x1 in pixel edges) is written xmin = x0 + 1, xmax = x1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from xml.sax.saxutils import escape


def voc_xml(
    *,
    filename: str,
    path: str,
    width: int,
    height: int,
    depth: int,
    objects: Iterable[tuple[str, Sequence[int]]],
    folder: str = "images",
) -> str:
    """One image's VOC annotation; objects: ``(class name, (x0, y0, x1, y1) pixel edges)``."""
    out = [
        "<annotation>",
        f"  <folder>{escape(folder)}</folder>",
        f"  <filename>{escape(filename)}</filename>",
        f"  <path>{escape(path)}</path>",
        "  <source><database>defectkit</database></source>",
        f"  <size><width>{int(width)}</width><height>{int(height)}</height><depth>{int(depth)}</depth></size>",
        "  <segmented>0</segmented>",
    ]
    for name, (x0, y0, x1, y1) in objects:
        out += [
            "  <object>",
            f"    <name>{escape(name)}</name>",
            "    <pose>Unspecified</pose>",
            "    <truncated>0</truncated>",
            "    <difficult>0</difficult>",
            f"    <bndbox><xmin>{int(x0) + 1}</xmin><ymin>{int(y0) + 1}</ymin>"
            f"<xmax>{int(x1)}</xmax><ymax>{int(y1)}</ymax></bndbox>",
            "  </object>",
        ]
    out.append("</annotation>")
    return "\n".join(out) + "\n"


def parse_voc_boxes(text: str) -> list[tuple[str, tuple[int, int, int, int]]]:
    """VOC XML text -> ``[(name, (x0, y0, x1, y1) pixel edges)]`` (inverse of ``voc_xml``)."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(text)
    out = []
    for obj in root.iter("object"):
        b = obj.find("bndbox")
        vals = [int(float(b.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")]
        out.append((obj.findtext("name"), (vals[0] - 1, vals[1] - 1, vals[2], vals[3])))
    return out
