""""Find more like these": a classifier trained on people's marks ranks the unmarked images.

Logistic regression (scikit-learn, the ``review`` extra; imported only here, when a ranking is
asked for) over each image's vector, standardised on the whole dataset (:mod:`gbifxdl.review._features`: an embedder's output
from ``gbifxdl infer``, else the built-in colour and shape features). The images marked with
the target mark (``bad`` by default) are the positives, every other marked image a negative;
the unmarked images are ranked by the probability of the target. Its held-out accuracy
(stratified k-fold cross-validation over the marks, k up to 5) is measured before the ranking
is shown, beside what always guessing the commoner answer would score.

A ranking only proposes: nothing is marked until a person confirms (the page writes normal
marks, ``via: rank``, to the journal, and curation honours them like any other).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gbifxdl._locate import ImageLocator
from gbifxdl._marks import RANKABLE, latest_marks
from gbifxdl.errors import GbifxdlError
from gbifxdl.review._features import Features, load_features
from gbifxdl.review._index import Images, load_images


class RankError(GbifxdlError):
    """Too few marks to learn from, or a ranking that cannot be made."""


@dataclass
class Ranking:
    """The unmarked images, most likely ``target`` first, and how far the classifier can be trusted."""

    target: str
    source: str  # what the vectors are
    positives: int  # marked images the classifier learned from: with the target mark
    negatives: int  # ... with another mark
    accuracy: float | None  # cross-validated (held-out) accuracy; None with fewer than 2 marks of either kind
    recall: float | None  # cross-validated share of the target-marked images it finds (probability >= 0.5)
    baseline: float  # the accuracy of always guessing the commoner answer
    folds: int
    keys: list[str]  # the unmarked images with a vector, most likely first
    scores: np.ndarray  # their probabilities, same order
    unranked: int  # unmarked images without a vector (unreadable, or not measured by the model)
    seconds: float
    trained_on: dict[str, str] = field(default_factory=dict)  # key -> mark, the marks it learned from

    def summary(self) -> dict[str, Any]:
        """Return what the page shows (no keys)."""
        return {"target": self.target, "source": self.source, "positives": self.positives,
                "negatives": self.negatives, "accuracy": self.accuracy, "recall": self.recall,
                "baseline": self.baseline, "folds": self.folds, "ranked": len(self.keys),
                "unranked": self.unranked, "seconds": round(self.seconds, 3),
                "histogram": np.histogram(self.scores, bins=20, range=(0, 1))[0].tolist()}


def _classifier() -> Any:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise RankError("ranking needs scikit-learn: pip install 'gbifxdl[review]'") from None
    return LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000)


def train(features: Features, marks: dict[str, str], target: str = "bad") -> Ranking:
    """Train on the marked images that have a vector and rank the others by the probability of ``target``."""
    if target not in RANKABLE:
        raise RankError(f"can rank by {' or '.join(RANKABLE)}, not {target!r}")
    started = time.perf_counter()
    rows = features.rows()
    marked = [(rows[k], m == target) for k, m in marks.items() if k in rows]
    positives = sum(1 for _, y in marked if y)
    negatives = len(marked) - positives
    shown = target.replace("_", " ")
    if not positives or not negatives:
        raise RankError(f"mark at least one image {shown} and one otherwise (good, needs crop, ...) to rank the "
                        f"others; marked so far: {positives} {shown}, {negatives} other")
    z = features.standardized()  # scaled on every image (see there), not on the marked ones
    x = z[[i for i, _ in marked]]
    y = np.array([label for _, label in marked], dtype=bool)
    folds = min(5, positives, negatives)
    accuracy = recall = None
    if folds >= 2:
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        held_out = cross_val_predict(_classifier(), x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=0))
        accuracy = float((held_out == y).mean())
        recall = float(held_out[y].mean())
    model = _classifier().fit(x, y)
    unmarked = [i for i, k in enumerate(features.keys) if k not in marks]
    scores = model.predict_proba(z[unmarked])[:, 1] if unmarked else np.zeros(0)
    order = np.argsort(-scores, kind="stable")
    return Ranking(target=target, source=features.source, positives=positives, negatives=negatives,
                   accuracy=accuracy, recall=recall, baseline=max(positives, negatives) / len(marked),
                   folds=folds if folds >= 2 else 0, keys=[features.keys[unmarked[i]] for i in order],
                   scores=scores[order].astype(np.float32), unranked=0,
                   seconds=time.perf_counter() - started,
                   trained_on={k: m for k, m in marks.items() if k in rows})


def rank(dataset_dir: str | Path, target: str = "bad", model: str | None = None) -> Ranking:
    """Rank the unmarked images of ``dataset_dir`` by how likely each is ``target`` (see the module).

    ``model``: the name of an embedder ``gbifxdl infer`` ran (default: the first one, by name, else
    the built-in features, computed once and cached in ``.gbifxdl/review/``).
    """
    root = Path(dataset_dir).resolve()
    images = load_images(root)
    features = load_features(root, images, ImageLocator(root, shards_held=64), model)
    return rank_images(images, features, latest_marks(root), target)


def rank_images(images: Images, features: Features, marks: dict[str, str], target: str = "bad") -> Ranking:
    """Return :func:`train`'s ranking of ``images`` on their ``marks`` (key -> mark; those of other images
    left out), with the unmarked images it could not rank counted."""
    marks = {k: m for k, m in marks.items() if k in images.position}
    ranking = train(features, marks, target)
    ranking.unranked = len(images) - len(marks) - len(ranking.keys)
    return ranking
