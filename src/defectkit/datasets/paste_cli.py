"""``defectkit paste``: more defective training images by copy-pasting the split's real defect instances."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "paste",
        help="paste the train split's defect instances onto train-good images (a derived dataset + split)",
        description="Cut every defect instance of the split's train images out along its mask and "
        "paste it, feathered, onto train-good images. Writes OUT/<category>/ (original files linked, "
        "pasted images added), OUT/split.json (val and test unchanged; pasted images in train) and "
        "OUT/paste.json. Give OUT/<category> and OUT/split.json to convert, finetune and eval.",
    )
    p.add_argument("split", metavar="SPLIT_JSON", help="split manifest from 'defectkit split' (--defects-to-train K > 0)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    p.add_argument("--per-type", type=int, default=40, help="pasted images per defect type (default 40)")
    p.add_argument(
        "--placement", choices=("same", "dihedral", "rotate"), default="rotate",
        help="where an instance goes: same place; one of 8 flips/quarter turns; any angle about the "
        "image centre + flip (default: rotate, for round objects seen from above and textures; use "
        "same for parts always in one pose)",
    )
    p.add_argument("--instances", type=int, default=1, help="instances per pasted image, 1..N drawn (default 1)")
    p.add_argument("--feather", type=float, default=1.5, help="edge softening, Gaussian sigma in px (default 1.5)")
    p.add_argument("--min-area", type=int, default=16, help="smallest instance in px (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_paste)


def _paste(args: argparse.Namespace) -> int:
    from defectkit.datasets.paste import PasteConfig, paste_split
    from defectkit.fileio import require_file
    from defectkit.runtime import make_config

    require_file(args.split, "split manifest")
    cfg = make_config(
        PasteConfig, "paste", split=args.split, output=args.output, per_type=args.per_type,
        placement=args.placement, instances=args.instances, feather=args.feather, min_area=args.min_area,
        seed=args.seed,
    )
    result = paste_split(cfg)
    total = sum(result.pasted.values())
    print(f"wrote {total} pasted images to {result.dataset} and the split {result.split}")
    return 0
