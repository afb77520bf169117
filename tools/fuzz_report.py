"""Run the property-based (hypothesis) tests with a larger budget and write their case counts.

    python tools/fuzz_report.py [--examples 1000] [--write-report [RELIABILITY.md]]

Runs ``tests/test_fuzz_api.py`` and ``tests/test_fuzz_config.py`` in one pytest process with
``JAXROBUST_FUZZ_EXAMPLES`` examples per property, every module writing its
``tests/fuzz_budget.Outcomes`` counters to one JSON report; prints a markdown table (cases tried
per input class, refused with a jaxrobust error, raw tracebacks, NaN or wrong results) and, with
``--write-report``, replaces the fuzz section of RELIABILITY.md between its markers. Exit status
1 if pytest fails or any case ended in a traceback, a NaN or a wrong result.

Examples:
    The table of a small report:

    >>> report = {"m": {"examples_per_property": 5, "cases": 3,
    ...     "totals": {"ok": 2, "undefined": 0, "refused": 1, "traceback": 0,
    ...                "nan_result": 0, "wrong_result": 0},
    ...     "classes": {"auroc/nan": {"refused": 1}, "auroc/valid": {"ok": 2}}}}
    >>> print(fuzz_table(report).splitlines()[2])
    | m | auroc/nan | 1 | 0 | 1 | 0 | 0 | 0 |
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_report import run_stamp, stamp_text, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FUZZ_FILES = ("tests/test_fuzz_api.py", "tests/test_fuzz_config.py")
REPORT_BEGIN = "<!-- fuzz:begin (written by tools/fuzz_report.py --write-report) -->"
REPORT_END = "<!-- fuzz:end -->"
FAILURES = ("traceback", "nan_result", "wrong_result")


def fuzz_table(report: dict) -> str:
    """Markdown: one row per (module, input class) and a total row."""
    lines = [
        "| module | input class | cases | ok | refused (jaxrobust error) | documented NaN "
        "| raw tracebacks | NaN or wrong results |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total = dict.fromkeys(("cases", "ok", "refused", "undefined", "traceback", "bad"), 0)
    for module, entry in sorted(report.items()):
        for name, counts in sorted(entry["classes"].items()):
            cases = sum(counts.values())
            bad = counts.get("nan_result", 0) + counts.get("wrong_result", 0)
            row = (cases, counts.get("ok", 0), counts.get("refused", 0))
            row += (counts.get("undefined", 0), counts.get("traceback", 0), bad)
            lines.append(f"| {module} | {name} | " + " | ".join(str(v) for v in row) + " |")
            for key, value in zip(total, row, strict=True):
                total[key] += value
    lines.append("| **all** | | " + " | ".join(f"**{v}**" for v in total.values()) + " |")
    return "\n".join(lines)


def run(examples: int) -> tuple[dict, int, float]:
    """Run the fuzz modules with ``examples`` per property; returns (report, pytest rc, s)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.json"
        env = {
            **os.environ,
            "JAXROBUST_FUZZ_EXAMPLES": str(examples),
            "JAXROBUST_FUZZ_REPORT": str(path),
            "JAXROBUST_FUZZ_REPORT_CONFIG": str(path),
        }
        tic = time.perf_counter()
        # One process (no pyproject addopts): the collectors write one report file.
        command = [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider"]
        command += FUZZ_FILES
        rc = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        seconds = time.perf_counter() - tic
        report = json.loads(path.read_text()) if path.exists() else {}
    return report, rc, seconds


def report_section(report: dict, examples: int, rc: int, seconds: float) -> str:
    from jaxrobust.devices import describe_devices

    cases = sum(entry["cases"] for entry in report.values())
    failures = sum(entry["totals"].get(k, 0) for entry in report.values() for k in FAILURES)
    return "\n".join(
        [
            REPORT_BEGIN,
            "",
            "```",
            f"python tools/fuzz_report.py --examples {examples} --write-report",
            "```",
            "",
            stamp_text(run_stamp(["hypothesis"]), on=describe_devices()),
            f"{examples} examples per property, {cases} cases in {seconds:.0f} s; pytest "
            f"{'passed' if rc == 0 else f'FAILED (exit {rc})'}; {failures} raw tracebacks, "
            "NaN or wrong results.",
            "",
            fuzz_table(report),
            "",
            REPORT_END,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="examples per property")
    parser.add_argument(
        "--write-report", nargs="?", const=str(ROOT / "RELIABILITY.md"), default=None
    )
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error(f"--examples must be >= 1, got {args.examples}")
    report, rc, seconds = run(args.examples)
    if not report:
        print("The fuzz modules wrote no report (did pytest collect them?).", file=sys.stderr)
        return 1
    section = report_section(report, args.examples, rc, seconds)
    print(section)
    if args.write_report:
        write_section(Path(args.write_report), REPORT_BEGIN, REPORT_END, section, "## Fuzz tests")
    failures = sum(entry["totals"].get(k, 0) for entry in report.values() for k in FAILURES)
    return 0 if rc == 0 and failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
