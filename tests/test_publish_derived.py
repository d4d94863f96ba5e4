"""`gbifxdl derive`: a GBIF derived-dataset DOI for the curated dataset, against the emulator."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import requests

from _publish_demo import build_demo, rows
from gbifxdl.testing.gbif_server import GbifEmulator

USER, PASSWORD = "curator", "s3cret-pass"
SOURCE = "https://zenodo.org/records/1234567"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("derive") / "ds", "folders")


@pytest.fixture
def demo(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "ds", symlinks=True))


@pytest.fixture
def gbif() -> GbifEmulator:
    with GbifEmulator(users={USER: PASSWORD}) as emulator:
        yield emulator


def _gbifxdl(*args: str, api_url: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GBIF_USER": USER, "GBIF_PWD": password,
           "GBIF_API_URL": api_url}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "gbifxdl", *args], capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip


def _contributions(root: Path) -> dict[str, int]:
    occurrences: dict[str, set[int]] = defaultdict(set)
    for row in rows(root):
        occurrences[row["datasetKey"]].add(row["gbifID"])
    return {k: len(v) for k, v in occurrences.items()}


@pytest.mark.slow
def test_dry_run_prints_the_exact_request_and_sends_nothing(demo: Path, gbif: GbifEmulator) -> None:
    done = _gbifxdl("derive", str(demo), "--title", "Nymphalidae photos", "--source-url", SOURCE, "--dry-run",
                    api_url=gbif.api_url)
    assert done.returncode == 0, done.stderr
    assert f"POST {gbif.api_url}/derivedDataset" in done.stdout and PASSWORD not in done.stdout + done.stderr
    body = json.loads(done.stdout.split("\n\n", 1)[1])
    assert body["relatedDatasets"] == _contributions(demo)  # counts after curation
    assert body["title"] == "Nymphalidae photos" and body["sourceUrl"] == SOURCE
    assert body["originalDownloadDOI"].startswith("10.15468/dl.") and body["description"]
    assert not [r for r in gbif.requests if r.method == "POST"]


@pytest.mark.slow
def test_derive_registers_and_every_description_gives_the_doi(demo: Path, gbif: GbifEmulator) -> None:
    done = _gbifxdl("derive", str(demo), "--title", "Nymphalidae photos", "--source-url", SOURCE, api_url=gbif.api_url)
    assert done.returncode == 0, done.stderr
    doi = done.stdout.split("https://doi.org/", 1)[1].split()[0]
    assert doi.startswith("10.15468/dd.")
    # GBIF holds the record, crediting each source dataset with its count
    used = requests.get(f"{gbif.api_url}/derivedDataset/{doi}/datasets", timeout=10).json()["results"]
    assert {u["datasetKey"]: u["numberRecords"] for u in used} == _contributions(demo)
    citation = requests.get(f"{gbif.api_url}/derivedDataset/{doi}/citation", timeout=10).text
    assert citation.startswith("Nymphalidae photos. GBIF.org (") and citation.endswith(f"https://doi.org/{doi}")
    # the card, croissant.json and the report say it; `gbifxdl cite DIR` prints it
    card = (demo / "README.md").read_text()
    assert f"https://doi.org/{doi}" in card and citation in card and "pretty_name: \"Nymphalidae photos\"" in card
    croissant = json.loads((demo / "croissant.json").read_text())
    assert croissant["citeAs"] == citation and croissant["identifier"] == f"https://doi.org/{doi}"
    assert croissant["url"] == SOURCE
    assert doi in (demo / "report.html").read_text()
    cited = _gbifxdl("cite", str(demo), api_url=gbif.api_url)
    assert cited.returncode == 0 and cited.stdout.strip() == citation
    # a second registration is refused (one DOI per dataset) unless forced
    again = _gbifxdl("derive", str(demo), "--title", "x", "--source-url", SOURCE, api_url=gbif.api_url)
    assert again.returncode != 0 and "already registered" in again.stderr and len(again.stderr.splitlines()) == 1


@pytest.mark.slow
def test_a_wrong_password_is_one_line_and_changes_nothing(demo: Path, gbif: GbifEmulator) -> None:
    card = (demo / "README.md").read_text()
    done = _gbifxdl("derive", str(demo), "--title", "T", "--source-url", SOURCE, api_url=gbif.api_url,
                    password="wrong")
    assert done.returncode != 0 and "401" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "wrong" not in done.stderr and (demo / "README.md").read_text() == card
    assert not (demo / ".gbifxdl" / "derived.json").exists()


@pytest.mark.slow
def test_bad_input_is_refused_before_anything_is_sent(demo: Path, gbif: GbifEmulator) -> None:
    done = _gbifxdl("derive", str(demo), "--title", "T", "--source-url", "zenodo record", api_url=gbif.api_url)
    assert done.returncode == 2 and "--source-url" in done.stderr
    assert not [r for r in gbif.requests if r.method == "POST"]


def test_the_emulated_service_checks_authentication_and_fields(gbif: GbifEmulator) -> None:
    url = f"{gbif.api_url}/derivedDataset"
    good = {"title": "T", "description": "D", "sourceUrl": SOURCE,
            "relatedDatasets": {"50c9509d-22c7-4a22-a47d-8c48425ef4a7": 3}}  # fmt: skip
    assert requests.post(url, json=good, timeout=10).status_code == 401
    bad = requests.post(url, json={**good, "title": " ", "relatedDatasets": {"nope": 0}}, auth=(USER, PASSWORD),
                        timeout=10)  # fmt: skip
    assert bad.status_code == 400 and "title" in bad.text and "nope" in bad.text and "positive" in bad.text
    made = requests.post(url, json=good, auth=(USER, PASSWORD), timeout=10)
    assert made.status_code == 201 and made.json()["createdBy"] == USER
    doi = made.json()["doi"]
    assert requests.get(f"{url}/{doi}", timeout=10).json()["title"] == "T"
    assert requests.get(f"{url}/10.15468/dd.none00", timeout=10).status_code == 404
