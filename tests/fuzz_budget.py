"""The budget of the property-based (hypothesis) tests, shared by every fuzz module.

``JAXROBUST_FUZZ_EXAMPLES`` (default 25) is the number of examples per property; raise it for a
longer run, e.g. ``JAXROBUST_FUZZ_EXAMPLES=500 python -m pytest -q tests/test_fuzz_api.py``.
Examples are derandomized (the same cases on every run) unless ``JAXROBUST_FUZZ_RANDOM=1``.

:class:`Outcomes` counts the cases a module tried, per input class and outcome, and writes them
as JSON for RELIABILITY.md (to ``JAXROBUST_FUZZ_REPORT`` when set).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("JAXROBUST_FUZZ_EXAMPLES", "25"))
DERANDOMIZE = os.environ.get("JAXROBUST_FUZZ_RANDOM", "") not in ("1", "true", "yes")

settings.register_profile(
    "jaxrobust-fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
FUZZ_SETTINGS = settings.get_profile("jaxrobust-fuzz")

OUTCOMES = ("ok", "undefined", "refused", "traceback", "nan_result", "wrong_result")


class Outcomes:
    """Per-input-class counts of outcomes: ``ok`` (correct, finite result), ``undefined`` (the
    documented NaN of a quantity that does not exist, e.g. accuracy when nothing is accepted),
    ``refused`` (a jaxrobust error), and the failures ``traceback`` (another exception),
    ``nan_result`` and ``wrong_result``; a fuzz test records every case and fails on the
    failures."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.counts: dict[str, Counter] = defaultdict(Counter)

    def record(self, input_class: str, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; one of {OUTCOMES}")
        self.counts[input_class][outcome] += 1

    def summary(self) -> dict:
        classes = {name: dict(sorted(c.items())) for name, c in sorted(self.counts.items())}
        totals: Counter = Counter()
        for c in self.counts.values():
            totals.update(c)
        return {
            "module": self.module,
            "examples_per_property": FUZZ_EXAMPLES,
            "cases": sum(totals.values()),
            "totals": {k: totals.get(k, 0) for k in OUTCOMES},
            "classes": classes,
        }

    def write(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write :meth:`summary` as JSON to ``path`` or ``$JAXROBUST_FUZZ_REPORT`` (if set).

        Several modules may share one report file: each writes its own entry, keyed by module.
        """
        path = path or os.environ.get("JAXROBUST_FUZZ_REPORT")
        if not path:
            return None
        path = Path(path)
        report = {}
        if path.exists():
            try:
                report = json.loads(path.read_text())
            except (OSError, ValueError):
                report = {}
        report[self.module] = self.summary()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return path
