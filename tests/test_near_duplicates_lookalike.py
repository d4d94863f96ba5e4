"""Collections that look alike on purpose keep every distinct specimen; their true copies still go.

Herbarium sheets (one colour chart, one label place), pinned insects on one ground and the
frames of one camera trap meet in their perceptual hashes far more often than chance. Each
collection here holds distinct specimens with a true copy (another size, JPEG quality or a
few percent cropped) every twentieth image; it is served by a loopback image host, fetched
at ``--resize 512`` and curated with the defaults, as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gbifxdl.curate import CurateSettings, curate
from gbifxdl.fetch import FetchSettings, fetch
from gbifxdl.testing import lookalike
from gbifxdl.testing.image_hosts import ImageHosts, write_selection

FETCH = FetchSettings(resize=512, workers=0, retry_backoff=0.05)
N, EVERY = 60, 20  # images per collection, a true copy every twentieth


def _fetched(tmp_path: Path, kind: str, layout: str = "folders", seed: int = 0) -> tuple[Path, list[int]]:
    """Return a fetched dataset of one collection, and each image's photo id (a copy shares its original's)."""
    files = tmp_path / "files"
    files.mkdir()
    images = lookalike.collection(kind, N, seed=seed, copy_every=EVERY)
    for i, (data, _) in enumerate(images):
        (files / f"{i:04d}.jpg").write_bytes(data)
    photo_ids = [p for _, p in images]
    with ImageHosts(1, files_dir=files) as hosts:
        urls = [f"{hosts.base_urls[0]}/files/{i:04d}.jpg" for i in range(N)]
        # four species, a copy in its original's class
        selection = write_selection(tmp_path / "selection.parquet", urls, species=[p % 4 for p in photo_ids])
        fetch(selection, tmp_path / "ds", FETCH if layout == "folders" else
              FetchSettings(resize=512, workers=0, retry_backoff=0.05, layout="webdataset"))
    return tmp_path / "ds", photo_ids


def _removed_ids(root: Path, photo_ids: list[int]) -> dict[str, list[int]]:
    """Return {reason: photo ids} of the removed rows."""
    table = pq.read_table(root / "removed.parquet", columns=["gbifID", "removed_reason"])
    out: dict[str, list[int]] = {}
    for gbif, reason in zip(table.column("gbifID").to_pylist(), table.column("removed_reason").to_pylist()):
        out.setdefault(reason, []).append(photo_ids[gbif - 1])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", lookalike.KINDS)
def test_a_look_alike_collection_loses_its_copies_and_no_specimen(tmp_path: Path, kind: str) -> None:
    root, photo_ids = _fetched(tmp_path, kind)
    summary = curate(root)

    copies = N // EVERY
    assert summary.kept == N - copies, summary.format()
    removed = _removed_ids(root, photo_ids)
    assert set(removed) == {"near_duplicate"}
    # exactly one image of each photo that has a copy went: every distinct specimen stays
    assert sorted(removed["near_duplicate"]) == sorted({p for p in photo_ids if photo_ids.count(p) == 2})
    near = summary.near_duplicates
    assert near["removed"] == copies and near["held_back"] == 0
    assert near["pairs"]["confirmed_by_pixels"] >= copies and near["pairs"]["confirmed_by_hashes"] == 0
    assert 0 < near["expected_false_matches"] < 1e-3
    # the card and the report say how many went as near duplicates, and how many false matches to expect
    card = (root / "README.md").read_text()
    assert f"Near duplicates: {copies} images removed" in card and "expected false matches" in card


@pytest.mark.slow
def test_webdataset_shards_of_a_look_alike_collection_keep_every_specimen(tmp_path: Path) -> None:
    root, photo_ids = _fetched(tmp_path, "herbarium", layout="webdataset", seed=3)
    summary = curate(root)
    assert summary.layout == "webdataset" and summary.kept == N - N // EVERY
    assert set(_removed_ids(root, photo_ids)) == {"near_duplicate"}


def _as_if_curated_by_an_older_gbifxdl(root: Path) -> None:
    """Curate as gbifxdl did before pixel confirmation (the hash match decides), and record it so."""
    curate(root, CurateSettings(pixel_tolerance=1e6, max_near_duplicate_share=1.0, phash_threshold=14,
                                chroma_threshold=128))
    for name in ("metadata.parquet", "removed.parquet"):
        table = pq.read_table(root / name)
        meta = dict(table.schema.metadata)
        prov = json.loads(meta[b"gbifxdl.provenance"])
        for key in ("near_duplicate_evidence", "pixel_tolerance", "max_near_duplicate_share"):
            prov["curate_settings"].pop(key, None)
        meta[b"gbifxdl.provenance"] = json.dumps(prov).encode()
        pq.write_table(table.replace_schema_metadata(meta), root / name)


def _gbifxdl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gbifxdl", *args, "--no-progress"], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_curating_an_older_dataset_again_says_what_would_change_before_changing_it(tmp_path: Path) -> None:
    root, photo_ids = _fetched(tmp_path, "pinned", seed=1)
    _as_if_curated_by_an_older_gbifxdl(root)
    lost = sum(len(v) for v in _removed_ids(root, photo_ids).values())
    assert lost > N // EVERY, "hashes alone remove distinct specimens of this collection"
    before = {p: p.read_bytes() for p in (root / "metadata.parquet", root / "removed.parquet")}

    refused = _gbifxdl("curate", str(root), "--phash-threshold", "14", "--chroma-threshold", "128")
    assert refused.returncode != 0
    line = refused.stderr.strip()
    assert "\n" not in line and "older gbifxdl" in line and f"restore {lost - N // EVERY} images" in line
    assert "--accept-near-duplicate-changes" in line
    assert {p: p.read_bytes() for p in before} == before  # nothing changed

    dry = _gbifxdl("curate", str(root), "--phash-threshold", "14", "--chroma-threshold", "128", "--dry-run")
    assert dry.returncode == 0 and f"would restore {lost - N // EVERY} rows" in dry.stdout

    done = _gbifxdl("curate", str(root), "--phash-threshold", "14", "--chroma-threshold", "128",
                    "--accept-near-duplicate-changes")
    assert done.returncode == 0, done.stderr
    assert _removed_ids(root, photo_ids) == {"near_duplicate": sorted(
        {p for p in photo_ids if photo_ids.count(p) == 2})} or sorted(_removed_ids(root, photo_ids)["near_duplicate"]) \
        == sorted({p for p in photo_ids if photo_ids.count(p) == 2})
    assert len(list((root / "images").rglob("*.jpg"))) == N - N // EVERY  # the specimens' files are back
    # and from now on the dataset records its evidence: curating it again changes nothing, refuses nothing
    again = _gbifxdl("curate", str(root), "--phash-threshold", "14", "--chroma-threshold", "128")
    assert again.returncode == 0 and "removed nothing new" in again.stdout


@pytest.mark.slow
def test_an_unusual_share_of_near_duplicates_is_held_back_with_example_pairs_in_the_report(tmp_path: Path) -> None:
    # what hashes alone would do to a look-alike collection: most of it "near duplicates"
    root, _ = _fetched(tmp_path, "herbarium", seed=2)
    held = curate(root, CurateSettings(pixel_tolerance=1e6, phash_threshold=20, chroma_threshold=128))
    assert held.near_duplicates["held_back"] > 0.1 * N and held.removed_total == {}
    assert held.kept == N and held.warnings[0].startswith("NEAR DUPLICATES HELD BACK")
    from gbifxdl.report import write_report

    page = write_report(root).read_text()
    assert "Held back:" in page and page.count('class="pair"') == len(held.near_duplicates["examples"]) > 0
    assert page.count("<img") >= 2 * len(held.near_duplicates["examples"])
    card = (root / "README.md").read_text()
    assert "**Warning:**" in card and "would have been removed as near duplicates" in card
    table = pq.read_table(root / "metadata.parquet")
    assert table.num_rows == N and pa.types.is_binary(table.schema.field("signature").type)


@pytest.mark.slow
def test_signatures_read_from_a_file_decide_as_in_memory_and_the_file_goes(tmp_path: Path, monkeypatch) -> None:
    # at millions of candidate rows the signatures go to a file beside the dataset (a gigabyte: never in
    # memory whole); here every candidate row does, and the decisions are those of the in-memory path
    from gbifxdl.curate import _near

    root, photo_ids = _fetched(tmp_path, "pinned")
    monkeypatch.setattr(_near, "_ON_DISK_FROM", 0)
    monkeypatch.setattr(_near, "_PARALLEL_FROM", 1)  # and the processes that score tens of millions of pairs
    written: list[Path] = []
    real = _near.SignatureFile.__init__

    def spy(self, path: Path, count: int) -> None:
        written.append(path)
        real(self, path, count)

    monkeypatch.setattr(_near.SignatureFile, "__init__", spy)
    summary = curate(root)
    assert written and all(p.parent == root / ".gbifxdl" for p in written)
    assert not list((root / ".gbifxdl").glob("near-signatures-*"))  # removed once decided
    copies = N // EVERY
    assert summary.kept == N - copies, summary.format()
    assert sorted(_removed_ids(root, photo_ids)["near_duplicate"]) == sorted(
        {p for p in photo_ids if photo_ids.count(p) == 2})
