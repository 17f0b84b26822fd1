"""Run the doctests of every module of the certify package (one test per module).

Modules whose source imports an optional dependency (torch, matplotlib) are skipped when it is missing.
Each module runs in its own temporary working directory, so examples that write files leave nothing
behind.  The public-API audit below checks that the exported objects carry a ``>>>`` example.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import io
import pkgutil
import re
from pathlib import Path

import pytest

import certify

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
OPTIONAL = ("torch", "matplotlib")


def _modules() -> list[str]:
    names = ["certify"]
    names += [m.name for m in pkgutil.walk_packages(certify.__path__, "certify.")]
    return sorted(names)


def _source(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return ""
    return Path(spec.origin).read_text(encoding="utf-8")


def _needs(name: str) -> list[str]:
    """Optional packages a module imports (at module level or inside functions and examples)."""
    src = _source(name)
    if name == "certify.train" or name.startswith("certify.train."):
        return ["torch"]
    return [dep for dep in OPTIONAL if re.search(rf"^\s*(?:>>>\s*)?(?:import|from)\s+{dep}\b", src, re.M)
            or re.search(rf"^\s*>>>.*\bimport\b.*\b{dep}\b", src, re.M)]


@pytest.mark.parametrize("name", _modules())
def test_module_doctests(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for dep in _needs(name):
        pytest.importorskip(dep)
    monkeypatch.chdir(tmp_path)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an optional dependency the source scan did not see
        if exc.name in OPTIONAL:
            pytest.skip(f"{name} needs {exc.name}")
        raise
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    for test in finder.find(module, name):
        runner.run(test, out=report.write)
    result = runner.summarize(verbose=False)
    if result.failed:
        pytest.fail(f"{result.failed} of {result.attempted} doctest examples failed in {name}:\n"
                    f"{report.getvalue()}", pytrace=False)


# ----------------------------------------------------------------------------------------------------
# Public API audit: every exported object has a docstring with a short example.

def _public_api() -> list[tuple[str, object]]:
    import certify.api as api

    objs = [(f"certify.{n}", getattr(certify, n)) for n in certify.__all__ if n != "__version__"]
    for n, obj in vars(api).items():
        if n.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) == api.__name__:
            objs.append((f"certify.api.{n}", obj))
    for pkg in ("certify.report", "certify.loop", "certify.snof", "certify.importers", "certify.networks"):
        mod = importlib.import_module(pkg)
        for n in getattr(mod, "__all__", ()):
            obj = getattr(mod, n)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                objs.append((f"{pkg}.{n}", obj))
    # certify.criteria has no __all__: the public functions its modules define
    for sub in ("diss", "diss_affine", "diss_gated", "diss_common", "lmi", "solvers", "validate"):
        mod = importlib.import_module(f"certify.criteria.{sub}")
        for n, obj in vars(mod).items():
            if not n.startswith("_") and inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                objs.append((f"{mod.__name__}.{n}", obj))
    # named in the documentation
    objs.append(("certify.datasets.quadruple_tank_dataset",
                 importlib.import_module("certify.datasets").quadruple_tank_dataset))
    return objs


def _has_example(obj: object) -> bool:
    doc = inspect.getdoc(obj) or ""
    if ">>>" in doc:
        return True
    if inspect.isclass(obj):  # an example may sit in the module that defines the class or in __init__
        init = obj.__dict__.get("__init__")
        return init is not None and ">>>" in (inspect.getdoc(init) or "")
    return False


_API = _public_api()


@pytest.mark.parametrize("qualname,obj", _API, ids=[q for q, _ in _API])
def test_public_api_has_docstring_with_example(qualname: str, obj: object) -> None:
    doc = inspect.getdoc(obj)
    assert doc, f"{qualname} has no docstring"
    assert _has_example(obj), f"{qualname}: the docstring has no '>>>' example"


def test_module_list_is_complete() -> None:
    names = _modules()
    assert {"certify", "certify.api", "certify.cli", "certify.report.model", "certify.snof.form"} <= set(names)
    assert len(names) > 40
