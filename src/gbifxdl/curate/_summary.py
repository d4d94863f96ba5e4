"""What a curation did, and the warnings a user must see (empty splits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gbifxdl.curate._near import rejected_pairs

SPLITS = ("train", "val", "test")
OOD = "test_ood"


def split_warnings(splits: dict[str, int], fractions: tuple[float, float, float] | list[float],
                   ood_th: int | None = None) -> list[str]:
    """Return one line per split that came out empty although its fraction is positive."""
    total = sum(splits.values())
    if not total:
        return ["no image was kept: the dataset is empty (see removed.parquet for why)"]
    if splits.get(OOD) == total:
        return [f"split 'train' is empty: every image is in test_ood (each class has at most the OOD threshold"
                f"{f' of {ood_th}' if ood_th is not None else ''} images); lower --ood-th, e.g. --ood-th 0"]
    return [f"split '{name}' is empty: the classes are too small for it; fetch more images per class or "
            "change --fractions" for name, share in zip(SPLITS, fractions) if share > 0 and not splits.get(name)]


@dataclass
class CurateSummary:
    """What curation kept, set aside and restored, and why."""

    dataset_dir: str
    layout: str
    rows_in: int  # every fetched row (what was kept or removed before, together)
    kept: int
    classes: int
    removed: dict[str, int]  # newly removed by this run, by reason
    removed_total: dict[str, int]  # every row removed now, by reason (removed.parquet)
    failures: dict[str, int]  # failed fetches by outcome
    splits: dict[str, int]
    sets: dict[str, int]
    restored: int = 0  # rows an earlier curation removed that these settings keep
    files_set_aside: int = 0
    files_restored: int = 0
    samples_set_aside: int = 0
    samples_restored: int = 0
    shards_rewritten: int = 0
    folders_removed: int = 0
    dry_run: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    card: str | None = None  # the README.md written, if any
    # the near-duplicate search: evidence per pair, removed or held back, expected false matches, examples
    near_duplicates: dict[str, Any] = field(default_factory=dict)
    # the model rules: each model (file, sha256, kind), each rule and what it removed, the crops
    models: dict[str, Any] = field(default_factory=dict)

    def saved(self) -> dict[str, Any]:
        """Return the part saved as curate_summary.json: the dataset's state, not this run's work."""
        return {
            "layout": self.layout,
            "images": self.kept,
            "classes": self.classes,
            "splits": self.splits,
            "sets": self.sets,
            "removed": self.removed_total,
            "failures": self.failures,
            "settings": self.settings,
            "warnings": self.warnings,
            "near_duplicates": self.near_duplicates,
            "models": self.models,
        }

    def format(self) -> str:
        """Return a human-readable report of this run (warnings last)."""
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"{self.dataset_dir} ({self.layout}): {self.rows_in} rows in, {self.kept} images kept "
            f"in {self.classes} classes{' (dry run: nothing changed)' if self.dry_run else ''}",
        ]
        if self.removed:
            lines.append(f"{verb} {sum(self.removed.values())} rows:")
            lines += [f"  {reason:<30} {n}" for reason, n in sorted(self.removed.items())]
        else:
            lines.append(f"{verb} nothing new")
        if self.restored:
            lines.append(f"{'would restore' if self.dry_run else 'restored'} {self.restored} rows an earlier "
                         "curation removed")
        moved = (self.files_set_aside, self.samples_set_aside, self.files_restored, self.samples_restored)
        if any(moved) or self.folders_removed:
            lines.append(
                f"files set aside in .gbifxdl/removed: {self.files_set_aside}, shard samples set aside: "
                f"{self.samples_set_aside}, files restored: {self.files_restored}, samples restored: "
                f"{self.samples_restored} ({self.shards_rewritten} shards rewritten), empty folders removed: "
                f"{self.folders_removed}"
            )
        near = self.near_duplicates
        if near:
            pairs = near["pairs"]
            lines.append(
                f"near duplicates: {pairs['candidates']} candidate pairs from the hashes, "
                f"{rejected_pairs(pairs)} rejected on their pixels, "
                f"{pairs['confirmed_by_pixels'] + pairs['confirmed_by_signature'] + pairs['confirmed_by_hashes']} "
                f"confirmed ({pairs['confirmed_by_pixels']} on the image files, {pairs['confirmed_by_signature']} on "
                f"signatures alone, {pairs['confirmed_by_hashes']} on hashes alone); expected false matches at "
                f"this size: about {near['expected_false_matches']:.2g}")
        for rule in (self.models or {}).get("rules", []):
            lines.append(f"rule {rule['rule']}: {rule['removed']} removed as {rule['reason']}"
                         + (f", {rule['cropped']} cropped" if "cropped" in rule else ""))
        crops = (self.models or {}).get("crops") or {}
        if crops.get("cropped") or crops.get("restored"):
            lines.append(f"images {'to cut' if self.dry_run else 'cut'} to their crop: {crops['cropped']}, originals "
                         f"{'to put' if self.dry_run else 'put'} back: {crops['restored']} (originals kept in "
                         ".gbifxdl/originals)")
        lines.append("splits: " + (", ".join(f"{k} {v}" for k, v in sorted(self.splits.items())) or "none"))
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)
