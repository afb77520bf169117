"""PNG plots: ROC curves, in-vs-out score histograms, reliability diagrams, robustness curves
(matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxrobust.workdir import atomic_path  # noqa: E402


def plot_roc_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], title: str, path: Path
) -> Path:
    """One ROC curve per score: ``{label: (fpr, tpr, auroc)}``.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> curve = (np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0]), 1.0)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = plot_roc_curves({"perfect": curve}, "ROC", Path(tmp) / "plots" / "roc.png")
        ...     path.name, path.read_bytes()[1:4]
        ('roc.png', b'PNG')
    """
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, (fpr, tpr, area) in curves.items():
        ax.plot(fpr, tpr, label=f"{label} (AUROC {100 * area:.1f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_score_histograms(
    scores_in: np.ndarray, scores_out: np.ndarray, names: tuple[str, str], title: str, path: Path
) -> Path:
    """Overlaid, density-normalised histograms of one score on in- and out-of-distribution data.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> scores_in, scores_out = np.linspace(0.0, 1.0, 50), np.linspace(0.5, 2.0, 50)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = plot_score_histograms(
        ...         scores_in, scores_out, ("in", "out"), "score", Path(tmp) / "hist.png"
        ...     )
        ...     path.name, path.read_bytes()[1:4]
        ('hist.png', b'PNG')
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    both = np.concatenate([scores_in, scores_out])
    lo, hi = np.nanpercentile(both, [0.5, 99.5])
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 60)
    ax.hist(np.clip(scores_in, lo, hi), bins=bins, density=True, alpha=0.55, label=names[0])
    ax.hist(np.clip(scores_out, lo, hi), bins=bins, density=True, alpha=0.55, label=names[1])
    ax.set(xlabel=title, ylabel="density")
    ax.legend()
    return _save(fig, path)


def plot_classwise_histograms(
    scores_in: np.ndarray,
    labels_in: np.ndarray,
    scores_out: np.ndarray,
    thresholds: np.ndarray,
    names: tuple[str, str],
    path: Path,
) -> Path:
    """One panel per class c: log p(x|c) of the in-distribution test inputs of class c against
    that of every OOD input, with the rejection threshold delta_c (the SDIM paper's Fig. 2).

    ``scores_in [N, C]``, ``labels_in [N]``, ``scores_out [M, C]``, ``thresholds [C]``.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> rng = np.random.default_rng(0)
        >>> s_in, s_out = rng.normal(0, 1, (40, 2)), rng.normal(-5, 1, (30, 2))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = plot_classwise_histograms(s_in, np.arange(40) % 2, s_out, [-2.0, -2.0],
        ...                                      ("in", "out"), Path(tmp) / "h.png")
        ...     path.read_bytes()[1:4]
        b'PNG'
    """
    scores_in, scores_out = np.asarray(scores_in), np.asarray(scores_out)
    labels_in, thresholds = np.asarray(labels_in), np.asarray(thresholds)
    num_classes = scores_in.shape[1]
    cols = min(num_classes, 5)
    rows = -(-num_classes // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for c, ax in enumerate(axes.flat):
        if c >= num_classes:
            ax.axis("off")
            continue
        own, out = scores_in[labels_in == c, c], scores_out[:, c]
        both = np.concatenate([own, out])
        lo, hi = np.nanpercentile(both, [0.5, 99.5]) if both.size else (0.0, 1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 40)
        ax.hist(np.clip(own, lo, hi), bins=bins, density=True, alpha=0.55, label=names[0])
        ax.hist(np.clip(out, lo, hi), bins=bins, density=True, alpha=0.55, label=names[1])
        if np.isfinite(thresholds[c]):
            ax.axvline(thresholds[c], color="k", linestyle="--", linewidth=1)
        ax.set_title(f"class {c}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel("log p(x~ | c)")
    return _save(fig, path)


def plot_reliability_diagram(bins: Mapping[str, np.ndarray], ece: float, title: str, path: Path):
    """Accuracy per confidence bin against the diagonal, with the bin counts below.

    ``bins`` is :func:`jaxrobust.metrics.reliability_bins`'s output (``edges``, ``count``,
    ``accuracy``, ``confidence``).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> bins = {
        ...     "edges": np.array([0.0, 0.5, 1.0]),
        ...     "count": np.array([0.0, 4.0]),
        ...     "accuracy": np.array([0.0, 0.75]),
        ...     "confidence": np.array([0.0, 0.8]),
        ... }
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = plot_reliability_diagram(bins, 0.05, "classifier", Path(tmp) / "rel.png")
        ...     path.name, path.read_bytes()[1:4]
        ('rel.png', b'PNG')
    """
    edges = np.asarray(bins["edges"])
    width = np.diff(edges)
    count = np.asarray(bins["count"])
    accuracy = np.where(count > 0, np.asarray(bins["accuracy"]), 0.0)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5, 6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    top.bar(edges[:-1], accuracy, width=width, align="edge", edgecolor="black", label="accuracy")
    confidence = np.where(count > 0, np.asarray(bins["confidence"]), 0.0)
    top.bar(
        edges[:-1],
        np.abs(confidence - accuracy),
        bottom=np.minimum(confidence, accuracy),
        width=width,
        align="edge",
        color="red",
        alpha=0.3,
        label="gap to mean confidence",
    )
    top.plot([0, 1], [0, 1], color="grey", linestyle=":")
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    top.set_title(f"{title} (ECE {100 * ece:.2f}%)")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(edges[:-1], count, width=width, align="edge", edgecolor="black")
    bottom.set(xlabel="confidence", ylabel="count")
    return _save(fig, path)


def plot_robustness_curves(curves: Mapping[str, tuple[list, list]], title: str, path: Path) -> Path:
    """Accuracy (%) vs epsilon, one line per ``{label: (epsilons, accuracies in [0, 1])}``.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = plot_robustness_curves({"fgsm": ([0.0, 0.1], [0.99, 0.5])}, "curve",
        ...                                   Path(tmp) / "robustness.png")
        ...     path.read_bytes()[1:4]
        b'PNG'
    """
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, (epsilons, accuracy) in curves.items():
        ax.plot(epsilons, 100 * np.asarray(accuracy), marker="o", label=label)
    ax.set(xlabel="epsilon", ylabel="accuracy (%)", ylim=(-2, 102))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Save ``fig`` to ``path`` through a temporary file in the same folder, renamed when
    complete (:func:`jaxrobust.workdir.atomic_path`)."""
    path = Path(path)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:  # a kill never leaves a 0-byte or partial PNG
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path
