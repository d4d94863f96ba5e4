"""A DOI of its own for a curated dataset: GBIF's derived-dataset service.

GBIF asks that data filtered heavily from a download be registered as a *derived
dataset* (``POST /v1/derivedDataset``, HTTP Basic authentication): a title, a
description, where the data lives (``sourceUrl``), the original download DOI, and
``relatedDatasets``, each source ``datasetKey`` with the number of occurrences it
contributed *after* curation. GBIF answers with the new DOI and a citation, which
:func:`derive` stores in ``DIR/.gbifxdl/derived.json``; the card, ``croissant.json`` and
the report read it from there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gbifxdl import __version__
from gbifxdl._io import write_text_atomic
from gbifxdl.errors import ConfigError, GbifError
from gbifxdl.publish.credit import citation_text
from gbifxdl.publish.facts import DERIVED_STATE, dataset_facts, read_json

__all__ = ["DerivedDataset", "dataset_citation", "derive", "derive_request"]

_DOI = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)?(10\.\d{4,9}/\S+)$", re.I)


@dataclass(frozen=True)
class DerivedDataset:
    """GBIF's record of a registered derived dataset."""

    doi: str
    citation: str
    title: str
    source_url: str
    related_datasets: dict[str, int]
    record: dict[str, Any]  # everything GBIF answered


def _bare_doi(value: str | None) -> str | None:
    m = _DOI.match(str(value or "").strip())
    return m.group(1) if m else None


def derive_request(dataset_dir: str | Path, *, title: str, source_url: str, description: str | None = None,
                   registration_date: str | None = None) -> dict[str, Any]:
    """Return the JSON body registering the curated dataset in ``dataset_dir`` as a derived dataset."""
    facts = dataset_facts(dataset_dir)
    if not title or not title.strip():
        raise ConfigError("a derived dataset needs a title: pass --title")
    url = urlparse(source_url or "")
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ConfigError(f"--source-url {source_url!r} is not an http(s) address: give the public page where "
                          "the dataset is deposited (Zenodo, a hub, a bucket)")
    if not facts.per_dataset:
        raise ConfigError(f"{facts.root}/metadata.parquet has no datasetKey: GBIF cannot credit its sources")
    key, doi = facts.prov.get("download_key"), _bare_doi(facts.prov.get("doi"))
    text = description or (
        f"{facts.images} images of {len(facts.classes)} classes ({facts.class_column}) from {facts.occurrences} "
        f"GBIF occurrences in {len(facts.per_dataset)} datasets, selected, fetched and curated (failed, corrupt and "
        f"duplicate images removed; train/val/test splits added) with gbifxdl {__version__}"
        + (f" from GBIF occurrence download {key}." if key else
           f" from GBIF's occurrence search {facts.prov['query']}." if facts.prov.get("source") == "search"
           and facts.prov.get("query") else "."))  # fmt: skip
    body: dict[str, Any] = {"title": title.strip(), "description": text, "sourceUrl": source_url}
    if doi:
        body["originalDownloadDOI"] = doi
    if registration_date:
        body["registrationDate"] = registration_date
    body["relatedDatasets"] = dict(facts.per_dataset)
    return body


def check_destination(dataset_dir: str | Path, api_url: str | None = None) -> str:
    """Return the API address a derived dataset of ``dataset_dir`` goes to; refuse GBIF for a demo dataset.

    A dataset made against gbifxdl's GBIF emulator (``gbifxdl demo``) carries the emulator's
    download key and DOI, which GBIF does not know: it may go only to an emulator on loopback.
    """
    import ipaddress

    from gbifxdl.gbif import resolve_api_url

    api = resolve_api_url(api_url)
    emulator = dataset_facts(dataset_dir).prov.get("emulator")
    if emulator:
        host = urlparse(api).hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigError(f"{dataset_dir} came from the offline GBIF emulator of `gbifxdl demo`, not from GBIF: "
                              f"its download DOI is made up, so it cannot be registered at {api}; to try derive on "
                              "it, start an emulator (gbifxdl.testing) and pass its address with --api-url")
    return api


def derive(dataset_dir: str | Path, *, title: str, source_url: str, description: str | None = None,
           credentials: Any = None, api_url: str | None = None, force: bool = False) -> DerivedDataset:
    """Return the derived dataset GBIF registered for ``dataset_dir``; its DOI goes into the card.

    ``credentials`` (a :class:`gbifxdl.credentials.Credentials`) default to the usual
    places (environment, ``.env``, ``~/.netrc``, prompt). A dataset already registered is
    not registered again unless ``force``.
    """
    from gbifxdl.credentials import load_credentials
    from gbifxdl.gbif import ApiSettings, check, resolve_api_url, send

    root = Path(dataset_dir)
    check_destination(root, api_url)
    previous = read_json(root / DERIVED_STATE)
    if previous and previous.get("doi") and not force:
        raise ConfigError(f"{root} is already registered as derived dataset https://doi.org/{previous['doi']}; "
                          "cite that DOI (`gbifxdl cite DIR`), or pass --force to register a new one")
    body = derive_request(root, title=title, source_url=source_url, description=description)
    credentials = credentials or load_credentials(api_url=api_url)
    api = resolve_api_url(api_url)
    # never retried: unlike a download request, GBIF does not recognise a repeated registration
    response = send("POST", f"{api}/derivedDataset", auth=credentials.auth, json=body, retry_429=False,
                    settings=ApiSettings(retries=0))
    if response.status_code in (400, 422):
        raise GbifError(f"GBIF rejected the derived dataset (HTTP {response.status_code}): "
                        f"{' '.join(response.text.split())[:300]}; fix it and run `gbifxdl derive` again",
                        status=response.status_code, body=response.text)  # fmt: skip
    check(response, what="register the derived dataset")
    try:
        answer = response.json()
        doi = _bare_doi(answer["doi"])
    except (ValueError, KeyError, TypeError):
        raise GbifError(f"GBIF answered the derived dataset without a DOI: {response.text[:200]!r}; "
                        "check https://www.gbif.org/user/derived-datasets before trying again") from None
    if doi is None:
        raise GbifError(f"GBIF answered an invalid DOI {answer.get('doi')!r}; check https://www.gbif.org/user/derived-datasets")
    record = {**answer, "doi": doi, "relatedDatasets": body["relatedDatasets"], "api": api}
    (root / DERIVED_STATE).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / DERIVED_STATE, json.dumps(record, indent=2, sort_keys=True) + "\n")
    _refresh(root)
    return DerivedDataset(doi=doi, citation=str(answer.get("citation") or f"https://doi.org/{doi}"),
                          title=body["title"], source_url=source_url, related_datasets=body["relatedDatasets"],
                          record=record)  # fmt: skip


def _refresh(root: Path) -> None:
    """Rewrite the card, croissant.json and (when there is one) the report with the DOI."""
    from gbifxdl.publish.card import write_card

    write_card(root, attribution=False)
    if (root / "report.html").is_file():
        from gbifxdl.report import write_report

        write_report(root)


def dataset_citation(dataset_dir: str | Path) -> str:
    """Return the citation to give for the dataset folder: its derived DOI's, else its download's."""
    root = Path(dataset_dir)
    derived = read_json(root / DERIVED_STATE)
    if derived and derived.get("doi"):
        return str(derived.get("citation") or f"https://doi.org/{derived['doi']}")
    cite = citation_text(dataset_facts(root).prov)
    if not cite:
        raise ConfigError(f"{root} records no DOI: cite its GBIF download key, or register it with `gbifxdl derive`")
    return cite
