"""One split manifest over several categories: the whole dataset as one set of classes.

Every category is split on its own by :func:`defectkit.datasets.split.make_split` (same seed, K
and val fraction), then the manifests are joined under the folder that holds the categories:

* ``dataset``: that folder (the MVTec / MVTec AD 2 / VisA root); paths are relative to it
  (``bottle/test/broken_large/000.png``);
* ``name``: ``<category>_<name>`` (``bottle_test_broken_large_000``: unique flat file names);
* ``defect_type``: ``<category>/<defect type>`` (``bottle/broken_large``) for defect images and
  ``good`` for good ones; ``defect_types`` lists the classes sorted (category, then defect type);
* ``category``: the categories joined by commas.

Entries are ordered by category, then each category's own (name) order, so COCO image ids
(1 + position) are the same on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from defectkit.datasets.mvtec import GOOD, DatasetIndex
from defectkit.datasets.split import SplitConfig, SplitEntry, SplitManifest, data_fingerprint, make_split
from defectkit.errors import InputError

ALL = "all"


def parse_categories(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"all"`` or ``"a,b"`` (or a sequence of names) -> a tuple of names (``("all",)`` for all)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = tuple(n.strip() for n in items if n.strip())
    if not names:
        raise InputError("--categories: give 'all' or a comma-separated list of categories")
    return names


def resolve_categories(index: DatasetIndex, spec: str | Sequence[str]) -> tuple[str, ...]:
    """The sorted categories that ``spec`` names (``all`` = every category of the index)."""
    names = parse_categories(spec)
    if ALL in names:
        return index.categories
    if unknown := sorted(set(names) - set(index.categories)):
        raise InputError(f"--categories: no category {unknown} in {index.root} (found {list(index.categories)})")
    return tuple(sorted(set(names)))


def class_name(category: str, defect_type: str) -> str:
    """The whole-dataset class of a defect type: ``bottle/broken_large``."""
    return f"{category}/{defect_type}"


def make_split_all(
    index: DatasetIndex, config: SplitConfig, categories: str | Sequence[str] = ALL
) -> SplitManifest:
    """Split every named category with ``config`` (its ``category`` is ignored) and join them (module doc)."""
    cats = resolve_categories(index, categories)
    roots = {c: index.category_root(c) for c in cats}
    parents = {r.parent for r in roots.values()}
    if len(parents) != 1:
        raise InputError(f"{index.root}: the categories {list(cats)} do not share one parent folder")
    base = parents.pop()
    entries: list[SplitEntry] = []
    for c in cats:
        part = make_split(index, replace(config, category=c))
        prefix = roots[c].relative_to(base).as_posix()
        for e in part.entries:
            entries.append(replace(
                e,
                name=f"{c}_{e.name}",
                image=f"{prefix}/{e.image}",
                mask=None if e.mask is None else f"{prefix}/{e.mask}",
                defect_type=GOOD if e.label == 0 else class_name(c, e.defect_type),
            ))
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"{index.root}: two images share the flat name {dup!r} across categories; rename one")
    files = [e.image for e in entries] + [e.mask for e in entries if e.mask]
    return SplitManifest(
        dataset=base,
        category=",".join(cats),
        seed=config.seed,
        defects_to_train=config.defects_to_train,
        val_fraction=config.val_fraction,
        fingerprint=data_fingerprint(base, files),
        defect_types=tuple(class_name(c, d) for c in cats for d in index.defect_types(c)),
        entries=tuple(entries),
    )
