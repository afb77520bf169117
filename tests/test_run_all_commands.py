"""``run_all.py --print-commands``: one self-contained shell command per selected cell, for a
cluster scheduler; nothing trained, nothing written. No test here trains."""

from __future__ import annotations

import doctest
import shlex
import sys
from pathlib import Path

import pytest

from jaxrobust import cli
from jaxrobust.config import import_file, load_config

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
NEGATIVE = EXPERIMENTS / "negative_sampling"
BAYESIAN = EXPERIMENTS / "bayesian_vae"


def driver(directory: Path):
    return import_file(directory / "run_all.py")


def printed(module, argv, capsys) -> list[str]:
    assert module.main([*argv, "--print-commands"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n") or not out
    return out.splitlines()


def parse(line: str) -> tuple[list[str], list[str]]:
    """``(train argv, evaluate argv)`` after the program name; fails unless the line is
    exactly ``jaxrobust train ... && jaxrobust evaluate ...``."""
    tokens = shlex.split(line)
    assert tokens.count("&&") == 1, line
    split = tokens.index("&&")
    train, evaluate = tokens[:split], tokens[split + 1 :]
    assert train[:2] == ["jaxrobust", "train"] and evaluate[:2] == ["jaxrobust", "evaluate"]
    return train[1:], evaluate[1:]


def check_lines(lines: list[str], runs: Path) -> list[tuple[Path, Path, list[str]]]:
    """Every line's (config, workdir, overrides), checked: an existing config file, a distinct
    workdir under ``runs`` that the evaluation reads too, overrides the CLI parses."""
    cells = []
    for line in lines:
        train, evaluate = parse(line)
        rest, overrides = cli._split_overrides(train)
        args = cli._parser().parse_args(rest)
        assert args.command == "train"
        config, workdir = Path(args.config), Path(args.workdir)
        assert config.is_file() and config.suffix == ".py", line
        assert workdir.parent == runs and workdir.is_absolute(), line
        assert evaluate == ["evaluate", "--workdir", str(workdir)], line
        cells.append((config, workdir, overrides))
    workdirs = [w for _, w, _ in cells]
    assert len(set(workdirs)) == len(workdirs)
    return cells


def common(tmp_path: Path) -> list[str]:
    return ["--workdir", str(tmp_path / "runs"), "--output", str(tmp_path / "RESULTS.md")]


def nothing_written(tmp_path: Path) -> None:
    assert list(tmp_path.iterdir()) == []  # no workdir, no RESULTS.md


def bayesian_configs(pairs=("table3_1_fmnist_mnist", "table3_3_mnist_fmnist"), methods=None):
    """The cells the Bayesian driver has configs for, from the directory listing."""
    found = []
    for pair in pairs:
        for path in sorted(BAYESIAN.glob(f"{pair}_*.py")):
            if methods is None or path.stem.removeprefix(pair + "_") in methods:
                found.append(path.stem)
    return found


def test_negative_sampling_prints_one_command_per_cell_with_the_budget(tmp_path, capsys):
    module = driver(NEGATIVE)
    lines = printed(module, [*common(tmp_path), "--epochs", "7"], capsys)
    cells = check_lines(lines, tmp_path / "runs")
    assert [w.name for _, w, _ in cells] == list(module.PAPER)
    assert all(c.name == f"{w.name}.py" for c, w, _ in cells)  # the cell's own config
    for _, _, overrides in cells:
        assert "models.vae.training.num_epochs=7" in overrides
    nothing_written(tmp_path)


def test_negative_sampling_respects_cells(tmp_path, capsys):
    module = driver(NEGATIVE)
    chosen = ["table3_fmnist_bernoulli_generated", "table1_fmnist_bernoulli"]
    lines = printed(module, [*common(tmp_path), "--cells", ",".join(chosen)], capsys)
    names = [w.name for _, w, _ in check_lines(lines, tmp_path / "runs")]
    assert sorted(names) == sorted(chosen) and len(names) == 2
    nothing_written(tmp_path)


def test_bayesian_prints_every_cell_and_the_classical_vae(tmp_path, capsys):
    module = driver(BAYESIAN)
    argv = [*common(tmp_path), "--epochs", "9", "--samples", "30", "--test-limit", "500"]
    cells = check_lines(printed(module, argv, capsys), tmp_path / "runs")
    names = [w.name for _, w, _ in cells]
    assert sorted(names[:-1]) == bayesian_configs() and names[-1] == "table5_2_classical_vae"
    assert len(names) == 11  # 2 pairs x 5 methods, and Table 5.2
    for config, workdir, overrides in cells:
        assert config.stem == workdir.name
        assert "models.vae.training.num_epochs=9" in overrides
        assert "evaluate.test_limit=500" in overrides
        if workdir.name.endswith(("_bbb", "_sghmc", "_swag", "_hmc")):
            assert "models.vae.training.posterior.num_samples=30" in overrides
    nothing_written(tmp_path)


def test_bayesian_respects_pairs_methods_and_cells(tmp_path, capsys):
    module = driver(BAYESIAN)
    argv = [*common(tmp_path), "--pairs", "table3_3_mnist_fmnist", "--methods", "swag,bbb"]
    names = [w.name for _, w, _ in check_lines(printed(module, argv, capsys), tmp_path / "runs")]
    expected = bayesian_configs(("table3_3_mnist_fmnist",), ("swag", "bbb"))
    assert sorted(names) == sorted([*expected, "table5_2_classical_vae"]) and len(expected) == 2
    lines = printed(module, [*argv, "--cells", "table3_3_mnist_fmnist_swag"], capsys)
    assert [w.name for _, w, _ in check_lines(lines, tmp_path / "runs")] == [
        "table3_3_mnist_fmnist_swag"
    ]
    nothing_written(tmp_path)


@pytest.mark.parametrize("directory", [NEGATIVE, BAYESIAN], ids=["negative", "bayesian"])
def test_each_printed_cell_selected_alone_prints_exactly_its_command(directory, tmp_path, capsys):
    module = driver(directory)
    budget = ["--epochs", "3"]
    lines = printed(module, [*common(tmp_path), *budget], capsys)
    assert len(lines) >= 8
    for line in lines:
        name = Path(parse(line)[1][-1]).name  # the evaluated workdir names the cell
        assert printed(module, [*common(tmp_path), *budget, "--cells", name], capsys) == [line]
    nothing_written(tmp_path)


@pytest.mark.parametrize("directory", [NEGATIVE, BAYESIAN], ids=["negative", "bayesian"])
def test_printed_overrides_are_valid_for_their_configs(directory, tmp_path, capsys):
    """The commands would not fail on a key or a value: each config loads with its overrides."""
    module = driver(directory)
    lines = printed(module, [*common(tmp_path), "--epochs", "4"], capsys)
    for config, _, overrides in check_lines(lines, tmp_path / "runs")[:3]:
        loaded = load_config(config, overrides)
        assert loaded.models.vae.training.num_epochs == 4
        assert loaded.progress is False


def test_finished_cells_are_left_out_and_unknown_cells_refused(tmp_path, capsys):
    module = driver(NEGATIVE)
    runs = tmp_path / "runs"
    first = "table1_fmnist_bernoulli"
    (runs / first).mkdir(parents=True)
    (runs / first / "results.json").write_text("{}")
    assert module.main([*common(tmp_path), "--print-commands"]) == 0
    captured = capsys.readouterr()
    names = [Path(parse(line)[1][-1]).name for line in captured.out.splitlines()]
    assert first not in names and len(names) == len(module.PAPER) - 1
    assert "1 finished cell(s) left out" in captured.err and first in captured.err
    with pytest.raises(SystemExit, match=r"Unknown cell 'table9'.*table1_fmnist_bernoulli"):
        module.main([*common(tmp_path), "--cells", "table9", "--print-commands"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # still no RESULTS.md


def test_the_loop_runs_exactly_the_printed_commands(tmp_path, capsys, monkeypatch):
    module = driver(NEGATIVE)
    (line,) = printed(module, [*common(tmp_path), "--cells", "table1_mnist_gaussian"], capsys)
    (cell,) = module.cells.select(module.make_cells(2, tmp_path / "runs"), "table1_mnist_gaussian")
    calls = []

    def fake_run(argv, check):
        calls.append(argv)
        if argv[3] == "evaluate":
            cell.workdir.mkdir(parents=True)
            cell.results.write_text('{"fake": 1}')

    monkeypatch.setattr(module.cells.subprocess, "run", fake_run)
    assert cell.run() == {"fake": 1}
    train, evaluate = parse(line)
    assert calls == [[sys.executable, "-m", "jaxrobust.cli", *argv] for argv in (train, evaluate)]
    calls.clear()
    assert cell.run() == {"fake": 1} and calls == []  # finished: skipped


def test_cells_module_examples():
    failures, tried = doctest.testmod(import_file(EXPERIMENTS / "cells.py"))[:2]
    assert tried >= 5 and failures == 0
