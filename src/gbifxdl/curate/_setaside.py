"""Set-aside files: what curation removes is moved, not deleted, so a later curation can restore it.

Removed files go to ``DIR/.gbifxdl/removed/<their path relative to DIR>`` (a hidden
folder in the dataset's state folder: ImageFolder and ``shards/*.tar`` globs never see
it). In the WebDataset layout a shard's removed samples go to a side shard of the same
relative path there. Every move is a rename or an atomic rewrite; a shard's side shard
gains the samples leaving a shard before the shard is rewritten, and loses the samples
coming back only after, so a kill leaves a sample in both places at worst, never in
neither. Only :func:`purge` (``gbifxdl clean``) deletes for good.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from gbifxdl._io import atomic_path
from gbifxdl._locate import SET_ASIDE


Progress = Callable[[str, int, int], None]


def set_aside_path(root: Path, rel: str) -> Path:
    """Return where the file at ``rel`` (relative to ``root``) is kept once removed."""
    return root / SET_ASIDE / rel


@dataclass
class MoveResult:
    """What moving files between the dataset and its set-aside folder did (or would do)."""

    files_set_aside: int = 0
    files_restored: int = 0
    samples_set_aside: int = 0
    samples_restored: int = 0
    shards_rewritten: int = 0
    folders_removed: int = 0

    def add(self, other: "MoveResult") -> "MoveResult":
        """Return the sum of two results."""
        return MoveResult(*(a + b for a, b in zip(vars(self).values(), vars(other).values())))


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def sync_folder_files(root: Path, base: Path, kept: set[str], restore: Iterable[str], dry_run: bool,
                      only_images: bool, image_exts: tuple[str, ...]) -> MoveResult:
    """Return what restoring ``restore`` (kept paths found set aside) and setting aside every
    file under ``base`` that no kept row names (paths relative to ``root``) did."""
    result = MoveResult()
    for rel in restore:
        result.files_restored += 1
        if not dry_run:
            _move(set_aside_path(root, rel), root / rel)
    if not base.is_dir():
        return result
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # e.g. .gbifxdl itself
        for name in filenames:
            path = Path(dirpath) / name
            if only_images and path.suffix.lower().lstrip(".") not in image_exts:
                continue
            rel = path.relative_to(root).as_posix()
            if rel not in kept:
                result.files_set_aside += 1
                if not dry_run:
                    _move(path, set_aside_path(root, rel))
    return result


def _members(path: Path) -> dict[str, list[tarfile.TarInfo]]:
    """Return {sample key: its members} of a readable tar ({} when absent or unreadable)."""
    from gbifxdl.curate._files import key_ext

    out: dict[str, list[tarfile.TarInfo]] = {}
    if not path.is_file():
        return out
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if info.isfile():
                    out.setdefault(key_ext(info.name)[0], []).append(info)
    except (OSError, tarfile.TarError, EOFError):
        return {}
    return out


def _write_tar(target: Path, parts: list[tuple[Path, list[tarfile.TarInfo]]]) -> None:
    """Write the given members of the given tars into ``target`` (atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp, tarfile.open(tmp, "w:", format=tarfile.PAX_FORMAT) as dst:
        for source, infos in parts:
            if not infos:
                continue
            with tarfile.open(source, "r:") as src:
                for info in infos:
                    dst.addfile(info, src.extractfile(info))


def sync_shard_files(root: Path, kept: dict[str, set[str]], dry_run: bool, progress: Progress | None = None
                     ) -> MoveResult:
    """Return what making each shard hold exactly its kept samples did: samples no kept row
    names go to the side shard, kept samples found in the side shard come back, shards
    and stray files no row uses are set aside whole."""
    from gbifxdl.curate._files import SHARDS

    result = MoveResult()
    rels: set[str] = set()
    for top in (root, root / SET_ASIDE):  # the shards, and the side shards
        if (top / SHARDS).is_dir():
            rels |= {p.relative_to(top).as_posix() for p in (top / SHARDS).rglob("*") if p.is_file()}
    ordered = sorted(rels)
    for done, rel in enumerate(ordered):
        if progress is not None:
            progress("syncing shards", done, len(ordered))
        result = result.add(_sync_one_shard(root, rel, kept.get(rel, set()), dry_run))
    return result


def _sync_one_shard(root: Path, rel: str, keys: set[str], dry_run: bool) -> MoveResult:
    result = MoveResult()
    main, side = root / rel, set_aside_path(root, rel)
    if not keys:  # no kept sample: the whole file goes aside (a stray, or every sample removed)
        if not main.exists():
            return result
        if not side.exists():
            result.files_set_aside += 1
            if not dry_run:
                _move(main, side)
            return result
    in_main, in_side = _members(main), _members(side)
    leaving = [k for k in in_main if k not in keys]
    coming = [k for k in in_side if k in keys and k not in in_main]
    stale = [k for k in in_side if k in keys and k in in_main]  # both copies: a killed run's
    if not leaving and not coming and not stale:
        return result
    result.samples_set_aside, result.samples_restored = len(leaving), len(coming)
    result.shards_rewritten = int(bool(leaving or coming))
    if dry_run:
        return result
    # three steps, each an atomic rewrite, so that every sample is in one of the two files
    # at any kill: the side shard gains what leaves, the shard gets its kept samples, the
    # side shard drops what came back
    if leaving:
        _write_tar(side, [(side, [i for infos in in_side.values() for i in infos]),
                          (main, [i for k in leaving if k not in in_side for i in in_main[k]])])
        in_side = _members(side)
    staying = [i for k in in_main if k in keys for i in in_main[k]]
    back = [i for k in coming for i in in_side[k]]
    if staying or back:
        _write_tar(main, [(main, staying), (side, back)])
    else:
        main.unlink(missing_ok=True)
    rest = [i for k, infos in in_side.items() if k not in keys for i in infos]
    if not rest:
        side.unlink(missing_ok=True)
    elif coming or stale:
        _write_tar(side, [(side, rest)])
    return result


@dataclass
class PurgeSummary:
    """What deleting the set-aside files did (or would do, in a dry run)."""

    files: int = 0
    bytes: int = 0
    dry_run: bool = False

    def format(self) -> str:
        """Return one line saying how many files and bytes were (or would be) deleted."""
        verb = "would delete" if self.dry_run else "deleted"
        return f"{verb} {self.files} set-aside files ({self.bytes / 1e6:.1f} MB)"


def purge(root: Path, dry_run: bool = False) -> PurgeSummary:
    """Return what deleting every set-aside file of the dataset at ``root`` did."""
    base = root / SET_ASIDE
    summary = PurgeSummary(dry_run=dry_run)
    if not base.is_dir():
        return summary
    for path in base.rglob("*"):
        if path.is_file():
            summary.files += 1
            summary.bytes += path.stat().st_size
    if not dry_run:
        shutil.rmtree(base)
    return summary
