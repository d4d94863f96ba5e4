"""A seeded synthetic universe of taxa and occurrences, standing in for GBIF's index.

The taxonomy holds real taxa a user would type (with GBIF's keys where known, e.g.
*Helianthus annuus* 9206251 under Plantae 6) and a long tail of generated Latin-looking
species with unique keys. Occurrences are drawn on demand, streaming, with long-tailed
counts per species, Europe-heavy countries, GBIF licences, datasets and media quirks;
:meth:`Universe.occurrences` draws only occurrences matching a GBIF predicate.
"""

from __future__ import annotations

import difflib
import random
import zlib
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from gbifxdl.testing import _names
from gbifxdl.testing._occurrences import Dataset, Medium, Occurrence, count_matching, generate

__all__ = ["RANKS", "Dataset", "Medium", "Occurrence", "Taxon", "Universe"]

RANKS = ("KINGDOM", "PHYLUM", "CLASS", "ORDER", "FAMILY", "GENUS", "SPECIES")
_GENERATED_KEYS = (100_000_000, 900_000_000)  # above every backbone key, inside int32


@dataclass(frozen=True)
class Taxon:
    """One name of the universe's backbone: an accepted taxon of a main rank, or a synonym."""

    key: int
    name: str  # canonical name, without authorship
    rank: str  # one of RANKS
    authorship: str
    parent_key: int | None
    # kingdom..self for accepted taxa; a synonym carries its accepted name's classification
    classification: tuple["Taxon", ...] = field(default=(), compare=False, repr=False)
    status: str = "ACCEPTED"  # or SYNONYM
    accepted_key: int | None = None  # the accepted species of a synonym

    @property
    def scientific_name(self) -> str:
        """Return the name with its authorship, as GBIF writes ``scientificName``."""
        return f"{self.name} {self.authorship}".strip()

    def key_at(self, rank: str) -> int | None:
        """Return the key of this taxon's ancestor (or itself) at ``rank``, or None."""
        for taxon in self.classification:
            if taxon.rank == rank:
                return taxon.key
        return None

    def name_at(self, rank: str) -> str | None:
        """Return the name of this taxon's ancestor (or itself) at ``rank``, or None."""
        for taxon in self.classification:
            if taxon.rank == rank:
                return taxon.name
        return None


class Universe:
    """A deterministic synthetic GBIF: the same seed gives the same taxa and occurrences."""

    def __init__(self, seed: int = 0, n_species: int = 400, *, even: bool = False) -> None:
        """``even``: every species as likely as every other (benches that want equal classes),
        instead of the long-tailed (Zipf) counts a real query has."""
        self.seed = seed
        self.even = even
        self._by_key: dict[int, Taxon] = {}
        self._by_name: dict[str, Taxon] = {}
        self._children: dict[int, list[int]] = {}
        self._build_backbone()
        self._grow_long_tail(random.Random(f"gbifxdl-universe|{seed}"), n_species)
        self._assign_weights(random.Random(f"gbifxdl-weights|{seed}"))

    # --- lookups -----------------------------------------------------------------------

    @property
    def taxa(self) -> tuple[Taxon, ...]:
        """Return every taxon, in backbone order (higher ranks before their children)."""
        return tuple(self._by_key.values())

    @property
    def species(self) -> tuple[Taxon, ...]:
        """Return every accepted species."""
        return tuple(t for t in self._by_key.values() if t.rank == "SPECIES" and t.status == "ACCEPTED")

    def taxon(self, key: int) -> Taxon | None:
        """Return the taxon with this key, or None."""
        return self._by_key.get(int(key))

    def find(self, name: str) -> Taxon | None:
        """Return the taxon whose canonical (or full scientific) name is ``name``, ignoring case."""
        return self._by_name.get(" ".join(name.split()).lower())

    def search(self, name: str) -> tuple[Taxon | None, str, int]:
        """Return ``(taxon, matchType, confidence)`` as GBIF's species match would."""
        exact = self.find(name)
        if exact is not None:
            return exact, "EXACT", 98 if exact.status == "SYNONYM" else 99
        wanted = " ".join(name.split()).lower()
        if not wanted:
            return None, "NONE", 100
        close = difflib.get_close_matches(wanted, list(self._by_name), n=1, cutoff=0.85)
        if close:
            ratio = difflib.SequenceMatcher(None, wanted, close[0]).ratio()
            return self._by_name[close[0]], "FUZZY", min(95, round(ratio * 100))
        words = wanted.split()
        for n_words in range(len(words) - 1, 0, -1):  # "Helianthus foo" -> the genus
            higher = self._by_name.get(" ".join(words[:n_words]))
            if higher is not None:
                return higher, "HIGHERRANK", 90
        return None, "NONE", 100

    def descendants(self, key: int) -> set[int]:
        """Return the keys of the accepted species under ``key`` (itself if a species)."""
        taxon = self.taxon(key)
        if taxon is None:
            return set()
        if taxon.status == "SYNONYM":
            return {taxon.accepted_key} if taxon.accepted_key is not None else set()
        found: set[int] = set()
        stack = [taxon.key]
        while stack:
            current = self._by_key[stack.pop()]
            if current.rank == "SPECIES":
                found.add(current.key)
            else:
                stack.extend(self._children.get(current.key, ()))
        return found

    # --- occurrences ---------------------------------------------------------------------

    def occurrences(
        self, n: int, predicate: dict | None = None, *, image_base_urls: Sequence[str] = ()
    ) -> Iterator[Occurrence]:
        """Yield ``n`` occurrences matching ``predicate`` (fewer only if none can match).

        Deterministic for (seed, predicate, number of image_base_urls), and a prefix of a longer run:
        the first ten of 1,000 are the ten of 10. Streaming, in bounded memory. Image URLs
        are ``{base}/photos/{id}/original.jpg`` on the given bases, the first taking ~70%
        (``http://127.0.0.1:8080`` when none is given).
        """
        return generate(self, n, predicate, tuple(image_base_urls))

    def count(self, predicate: dict | None = None, total: int = 1_000_000) -> int:
        """Return about how many of ``total`` unfiltered occurrences match ``predicate``."""
        return count_matching(self, predicate, total)

    def weight(self, taxon: Taxon) -> float:
        """Return the taxon's share of occurrences (long-tailed over species; 0 for ranks above)."""
        return self._weights.get(taxon.key, 0.0)

    # --- construction --------------------------------------------------------------------

    def _add(self, key: int | None, name: str, rank: str, authorship: str, parent: Taxon | None,
             *, accepted: Taxon | None = None) -> Taxon:
        """Return a new taxon, registered under its key and names, with a stable key if none."""
        if key is None:
            low, high = _GENERATED_KEYS
            key = low + zlib.crc32(name.encode()) % (high - low)
            while key in self._by_key:  # rare crc collisions: probe deterministically
                key += 1
        if key in self._by_key or name.lower() in self._by_name:
            raise ValueError(f"duplicate taxon {key} {name!r} in the universe's backbone")
        if accepted is not None:
            taxon = Taxon(key, name, rank, authorship, accepted.parent_key, accepted.classification,
                          "SYNONYM", accepted.key)
        else:
            taxon = Taxon(key, name, rank, authorship, parent.key if parent else None)
            lineage = (parent.classification if parent else ()) + (taxon,)
            object.__setattr__(taxon, "classification", lineage)  # it contains itself
            if parent is not None:
                self._children.setdefault(parent.key, []).append(key)
        self._by_key[key] = taxon
        self._by_name[name.lower()] = taxon
        self._by_name.setdefault(taxon.scientific_name.lower(), taxon)
        return taxon

    def _build_backbone(self) -> None:
        """Add the real taxa listed in :data:`_names.BACKBONE`."""
        stack: list[Taxon] = []
        for line in _names.BACKBONE.strip("\n").splitlines():
            depth = len(line) - len(line.lstrip())
            rank, rest = line.strip().split(" ", 1)
            name, authorship, key = (part.strip() for part in rest.split("|"))
            if rank == "SYNONYM":
                self._add(int(key) if key else None, name, "SPECIES", authorship, None, accepted=stack[-1])
                continue
            del stack[depth:]
            stack.append(self._add(int(key) if key else None, name, rank, authorship,
                                   stack[-1] if stack else None))

    def _grow_long_tail(self, rng: random.Random, n_species: int) -> None:
        """Add generated genera (and some families) until there are ``n_species`` species."""
        families = [t for t in self._by_key.values() if t.rank == "FAMILY"]
        orders = [t for t in self._by_key.values() if t.rank == "ORDER"]
        missing = n_species - len(self.species)
        while missing > 0:
            if rng.random() < 0.35:  # a new family under an existing order
                order = rng.choice(orders)
                suffix = "idae" if order.name_at("KINGDOM") == "Animalia" else "aceae"
                family_name = self._new_name(rng, lambda: _stem(rng).capitalize() + suffix)
                families.append(self._add(None, family_name, "FAMILY", _author(rng), order))
            family = rng.choice(families)
            genus_name = self._new_name(rng, lambda: (_stem(rng) + rng.choice(_names.GENUS_ENDINGS)).capitalize())
            genus = self._add(None, genus_name, "GENUS", _author(rng), family)
            for _ in range(min(missing, 1 + int(rng.expovariate(0.5)))):
                epithet = lambda: rng.choice(_names.EPITHETS) if rng.random() < 0.7 else _stem(rng) + "ensis"
                name = self._new_name(rng, lambda: f"{genus_name} {epithet()}")
                self._add(None, name, "SPECIES", _author(rng, species=True), genus)
                missing -= 1

    def _new_name(self, rng: random.Random, make) -> str:
        """Return a name from ``make()`` that no taxon has yet."""
        for _ in range(1000):
            name = make()
            if name.lower() not in self._by_name:
                return name
        raise RuntimeError("the universe ran out of generated names; ask for fewer species")

    def _assign_weights(self, rng: random.Random) -> None:
        """Give species Zipf-distributed shares (1/rank), real (demo) species at the head."""
        real = [t for t in self.species if t.name.lower() in _REAL_NAMES]
        tail = [t for t in self.species if t.name.lower() not in _REAL_NAMES]
        rng.shuffle(real)
        rng.shuffle(tail)
        ranked = real + tail
        head = len(real) // 3  # the most recorded species stay ones a demo user knows
        for i in range(len(real), len(ranked)):  # let some tail species climb among the rest
            if rng.random() < 0.2:
                j = rng.randrange(head, i)
                ranked[i], ranked[j] = ranked[j], ranked[i]
        if self.even:
            self._weights = {t.key: 1 / len(ranked) for t in ranked}
            return
        total = sum(1 / (r + 1) for r in range(len(ranked)))
        self._weights = {t.key: 1 / (r + 1) / total for r, t in enumerate(ranked)}


def _stem(rng: random.Random) -> str:
    """Return a lower-case Latin-looking stem, e.g. 'chrysopter'."""
    return (rng.choice(_names.GENUS_STEMS) + rng.choice(_names.GENUS_ROOTS)).lower()


def _author(rng: random.Random, species: bool = False) -> str:
    """Return an authorship such as 'Walker, 1859' or '(Hübner, 1803)'."""
    text = f"{rng.choice(_names.AUTHORS)}, {rng.randint(1758, 2015)}"
    return f"({text})" if species and rng.random() < 0.3 else text


_REAL_NAMES = frozenset(
    line.strip().split(" ", 1)[1].split("|")[0].strip().lower()
    for line in _names.BACKBONE.splitlines()
    if line.strip().startswith("SPECIES ")
)
