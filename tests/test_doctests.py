"""The ``Examples:`` of the docstrings run, and every public name of the documented packages
has one.

Every module of the ``jaxrobust`` package is found by ``pkgutil.walk_packages``, so examples
added to any module are run here without registering them; a failure names its module.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import jaxrobust

# Modules whose examples need optional packages outside the test dependencies.
NEEDS_OPTIONAL_PACKAGES = frozenset({"jaxrobust.attacks.references"})

# Packages each of whose public functions and classes (the names in ``__all__``) must carry a
# runnable example (``>>>``) in its docstring. Extend this as packages gain examples.
DOCUMENTED_PACKAGES = (
    "jaxrobust.metrics",
    "jaxrobust.distributions",
    "jaxrobust.data",
    "jaxrobust.nn",
    "jaxrobust.inference",
    "jaxrobust.scores",
    "jaxrobust.config",
)

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    found = [info.name for info in pkgutil.walk_packages(jaxrobust.__path__, prefix="jaxrobust.")]
    return sorted({jaxrobust.__name__, *found} - NEEDS_OPTIONAL_PACKAGES)


def _public_names() -> list[tuple[str, str]]:
    names = []
    for package in DOCUMENTED_PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isroutine(obj):
                names.append((package, name))
    return names


MODULES = _modules()


def test_every_module_is_found():
    assert {"jaxrobust.arrays", "jaxrobust.metrics.detection", "jaxrobust.nn.conv"} <= set(MODULES)


@pytest.mark.parametrize("module_name", MODULES)
def test_examples_run(module_name):
    module = importlib.import_module(module_name)
    output: list[str] = []
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    for test in doctest.DocTestFinder().find(module, module_name):
        runner.run(test, out=output.append)
    assert not runner.failures, (
        f"{runner.failures} of {runner.tries} examples of {module_name} failed:\n" + "".join(output)
    )


@pytest.mark.parametrize(("package", "name"), _public_names())
def test_public_name_has_example(package, name):
    obj = getattr(importlib.import_module(package), name)
    assert ">>>" in (obj.__doc__ or ""), (
        f"{package}.{name} has no example: add an 'Examples:' section with '>>>' lines and "
        "their checked output to its docstring."
    )
    # ... and doctest finds it in the module that defines it, so test_examples_run runs it.
    module_name = obj.__module__
    found = doctest.DocTestFinder().find(importlib.import_module(module_name), module_name)
    qualified = f"{module_name}.{obj.__qualname__}"
    assert any(test.name == qualified and test.examples for test in found), (
        f"the example of {package}.{name} is not collected by doctest from {module_name}"
    )
