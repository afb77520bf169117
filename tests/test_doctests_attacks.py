"""Every public function of ``jaxrobust.attacks`` has an ``Examples:`` section that doctest
collects (``tests/test_doctests.py`` runs them with every other module's), and the search
attacks' results share their first fields."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import jaxrobust.attacks as attacks

# references.py wraps optional packages (foolbox, ART, cleverhans): not doctested here.
MODULES = ["jaxrobust.attacks"] + [
    f"jaxrobust.attacks.{info.name}"
    for info in pkgutil.iter_modules(attacks.__path__)
    if info.name != "references"
]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def test_every_public_function_and_class_has_an_example():
    missing = [
        name
        for name in attacks.__all__
        if (inspect.isfunction(obj := getattr(attacks, name)) or inspect.isclass(obj))
        and ">>>" not in (obj.__doc__ or "")
    ]
    assert not missing, f"public names without a doctest example: {missing}"


def test_every_public_function_and_class_is_doctested():
    """Each example is found by doctest in its module (the key shim keeps ``__module__``)."""
    found = set()
    for name in MODULES:
        module = importlib.import_module(name)
        found |= {t.name.rsplit(".", 1)[-1] for t in doctest.DocTestFinder().find(module, name)}
    public = [
        name
        for name in attacks.__all__
        if inspect.isfunction(getattr(attacks, name)) or inspect.isclass(getattr(attacks, name))
    ]
    assert set(public) <= found, sorted(set(public) - found)


def test_search_results_start_with_adversarial_and_success():
    for result in (
        attacks.CWResult,
        attacks.DeepFoolResult,
        attacks.JSMAResult,
        attacks.BoundaryResult,
        attacks.LocalSearchResult,
    ):
        assert result._fields[:2] == ("adversarial", "success"), result
