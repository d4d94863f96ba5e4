"""Small classes: a usable train split, and a warning in the CLI, the card and the report
whenever a split comes out empty. And curate() does what the command does, silently."""

from __future__ import annotations

import html
import logging
from pathlib import Path

from click.testing import CliRunner

from _dataset_factory import Row, jpeg, photo, write_dataset
from gbifxdl.curate import CurateSettings, curate, split_warnings


def _dataset(root: Path, classes: int, per_class: int) -> Path:
    rows = [Row(1000 * c + i, 100 + c, jpeg(photo(1000 * c + i))) for c in range(classes) for i in range(per_class)]
    return write_dataset(root, rows, orphans=False)


def test_a_cap_of_five_per_class_still_trains(tmp_path: Path) -> None:
    # `--max-per-class 5`: every class has 5 images, the OOD threshold's default
    root = _dataset(tmp_path / "ds", classes=12, per_class=5)

    summary = curate(root)

    assert "test_ood" not in summary.splits
    assert summary.splits["train"] >= 36 and summary.splits["val"] >= 1 and summary.splits["test"] >= 1
    assert summary.warnings == []


def test_rare_classes_still_go_to_test_ood() -> None:
    from gbifxdl.curate._splits import SplitSpec, assign

    sizes = {"big": 60, "mid": 30, "rare": 3}
    classes = [c for c, n in sizes.items() for _ in range(n)]
    split, _ = assign(classes, [f"g{i}" for i in range(len(classes))], [None] * len(classes),
                      SplitSpec(ood_th=5, ood_relative=True))
    assert {s for c, s in zip(classes, split) if c == "rare"} == {"test_ood"}
    assert "test_ood" not in {s for c, s in zip(classes, split) if c != "rare"}


def test_an_empty_split_is_said_in_the_cli_the_card_and_the_report(tmp_path: Path) -> None:
    from gbifxdl.cli import cli
    from gbifxdl.report import write_report

    root = _dataset(tmp_path / "ds", classes=6, per_class=1)  # one image per class: nothing for val, test

    result = CliRunner().invoke(cli, ["curate", str(root), "--no-progress"])

    assert result.exit_code == 0, result.output
    assert "warning: split 'val' is empty" in result.stderr and "warning: split 'test' is empty" in result.stderr
    card = (root / "README.md").read_text()
    assert "**Warning:** split 'val' is empty" in card
    page = write_report(root).read_text()
    assert html.escape("split 'test' is empty") in page


def test_every_image_out_of_distribution_says_how_to_fix_it() -> None:
    (warning,) = split_warnings({"test_ood": 40}, (0.8, 0.1, 0.1), 5)
    assert "split 'train' is empty" in warning and "--ood-th" in warning
    assert split_warnings({"train": 8, "val": 1, "test": 1}, (0.8, 0.1, 0.1)) == []
    assert split_warnings({"train": 8}, (1.0, 0.0, 0.0)) == []  # no val, no test asked for


def test_curate_writes_the_card_and_prints_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    root = _dataset(tmp_path / "ds", classes=3, per_class=8)
    calls = []

    summary = curate(root, progress=lambda what, done, total: calls.append((what, done, total)))

    assert capsys.readouterr() == ("", "")
    assert summary.card == str(root / "README.md")
    assert (root / "README.md").is_file() and (root / "ATTRIBUTION.csv").is_file()
    assert ("checking images", 0, 24) in calls

    other = _dataset(tmp_path / "other", classes=3, per_class=8)
    assert curate(other, CurateSettings(seed=1), card=False).card is None
    assert not (other / "README.md").exists()


def test_warnings_go_to_the_summary_and_the_log_not_the_terminal(tmp_path: Path, capsys, caplog, monkeypatch) -> None:
    # as in a user's script: no logging configured (other tests' CLI runs leave root handlers)
    monkeypatch.setattr(logging.getLogger(), "handlers", [caplog.handler])
    root = _dataset(tmp_path / "ds", classes=4, per_class=1)

    summary = curate(root)

    assert capsys.readouterr() == ("", "")
    assert any("split 'val' is empty" in w for w in summary.warnings)
    assert any("split 'val' is empty" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
