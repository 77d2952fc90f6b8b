"""CLI wiring for ``defectkit weights list`` and ``defectkit weights fetch``."""

from __future__ import annotations

import argparse
import json

EPILOG = """\
examples:
  defectkit weights list
  defectkit weights fetch yolov8s-worldv2 clip_vit_b_32 sam_vit_b resnet18
  defectkit finetune sam --checkpoint sam_vit_b --model-type vit_b ...   # a name resolves from the folder

Files go to $DEFECTKIT_HOME/weights (default ~/.cache/defectkit/weights); every weights flag and
PIPELINE key takes a NAME (or the official file name) and reads it from there. Nothing else in
defectkit downloads. DEFECTKIT_WEIGHTS_URL replaces the download base URL (a mirror).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "weights",
        help="list the known pretrained weights files and fetch them on purpose",
        description="Known pretrained weights (YOLO-World v2, YOLOv8, CLIP ViT-B/32, SAM, torchvision "
        "ResNets): their official URL, size, sha256 and licence, and an explicit, checked download.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="weights_command", metavar="COMMAND", required=True)
    q = sub.add_parser(
        "list",
        help="the known files and whether each is in the weights folder",
        description="List the known weights files and whether each is in the weights folder.",
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of a table (default: table)")
    q.set_defaults(func=_list)
    q = sub.add_parser(
        "fetch",
        help="download files by name (progress bar, sha256 checked, atomic)",
        description="Download weights files by name into the weights folder; a published "
        "sha256 (or sha256 prefix) is checked before the file is moved into place.",
    )
    q.add_argument("names", nargs="+", metavar="NAME", help="names from `defectkit weights list`")
    q.add_argument("--dir", default=None, help="destination folder (default: $DEFECTKIT_HOME/weights)")
    q.add_argument(
        "--force",
        action="store_true",
        help="download again even when a good copy is there (default: keep it)",
    )
    q.set_defaults(func=_fetch)


def _size(mb: float | None) -> str:
    if mb is None:
        return "?"
    return f"~{mb / 1000:.1f} GB" if mb >= 1000 else f"~{mb:.0f} MB"


def _list(args: argparse.Namespace) -> int:
    from defectkit.weights.registry import REGISTRY, weights_dir

    folder = weights_dir()
    rows = [
        {
            "name": w.name,
            "file": w.file,
            "kind": w.kind,
            "size_mb": w.size_mb,
            "sha256": w.sha256,
            "sha256_prefix": w.sha256_prefix,
            "licence": w.licence,
            "url": w.url,
            "present": (folder / w.file).is_file(),
        }
        for w in REGISTRY.values()
    ]
    if args.json:
        print(json.dumps({"folder": str(folder), "weights": rows}, indent=2))
        return 0
    print(f"weights folder: {folder}")
    for r in rows:
        sha = r["sha256"] or (f"{r['sha256_prefix']}..." if r["sha256_prefix"] else "not published")
        print(
            f"{'*' if r['present'] else ' '} {r['name']:<18} {r['file']:<24} {_size(r['size_mb']):>8}  "
            f"{r['licence']}\n    {r['url']}\n    sha256: {sha}"
        )
    print("* = in the weights folder; fetch with: defectkit weights fetch NAME...")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from defectkit.weights.fetch import fetch_weights

    for r in fetch_weights(args.names, args.dir, force=args.force):
        check = "sha256 checked" if r.verified else f"no published hash; sha256 {r.sha256}"
        print(f"{r.name}: {r.status} {r.path} ({check})")
    return 0
