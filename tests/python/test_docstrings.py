"""Docstrings on methods, not only classes (issue 16): every public class, method, property and
function of the package has one at runtime (``help()``, ``__doc__``), and the stubs, where
editors read them, carry the same text for every method and property of the native classes."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import ModuleType
from typing import Iterator, Optional

import pytest

import tailguard
import tailguard._native as native
import tailguard.testing

STUBS = Path(tailguard.__file__).with_name("_native.pyi")  # shipped beside the package


def _doc(attr: object) -> Optional[str]:
    if isinstance(attr, (staticmethod, classmethod)):
        attr = attr.__func__
    doc = getattr(attr, "__doc__", None)
    return " ".join(doc.split()) if isinstance(doc, str) and doc.strip() else None


def _public() -> Iterator[tuple[str, object]]:
    """Every public name of the package, its testing module and the native module, once."""
    seen: set[int] = set()
    modules: list[ModuleType] = [tailguard, tailguard.testing, native]
    for module in modules:
        for name in module.__all__:
            obj = getattr(module, name)
            if name.startswith("_") or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{module.__name__}.{name}", obj


def _members(cls: type) -> Iterator[tuple[str, object]]:
    """The public methods and properties a class defines itself (inherited ones are checked on
    the class that defines them)."""
    for name, attr in vars(cls).items():
        if not name.startswith("_"):
            yield name, attr


def test_every_public_class_method_property_and_function_has_a_docstring() -> None:
    missing = []
    checked = 0
    for name, obj in _public():
        if inspect.isclass(obj):
            for member, attr in _members(obj):
                checked += 1
                if _doc(attr) is None:
                    missing.append(f"{name}.{member}")
        elif not callable(obj):
            continue
        checked += 1
        if _doc(obj) is None:
            missing.append(name)
    assert not missing, f"no docstring: {missing}"
    assert checked > 120  # the walk saw the native classes' members, not only the classes


def _stub_classes() -> Iterator[ast.ClassDef]:
    for node in ast.parse(STUBS.read_text()).body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            yield node


def _stub_methods() -> Iterator[tuple[str, str, Optional[str]]]:
    for node in _stub_classes():
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                doc = ast.get_docstring(item)
                yield node.name, item.name, " ".join(doc.split()) if doc else None


def test_the_stubs_carry_the_runtime_docstring_of_every_method_and_property() -> None:
    stubbed = list(_stub_methods())
    assert len(stubbed) > 90
    for cls, name, doc in stubbed:
        runtime = _doc(vars(getattr(native, cls))[name])
        assert doc is not None, f"{cls}.{name} has no docstring in {STUBS.name}: {runtime!r}"
        assert doc == runtime, f"{cls}.{name}: the stub says {doc!r}, the runtime {runtime!r}"


def test_every_class_in_the_stubs_has_a_docstring() -> None:
    # A summary of the runtime's (which may say more, in Rust's Markdown).
    assert [node.name for node in _stub_classes() if ast.get_docstring(node) is None] == []


@pytest.mark.parametrize(
    "obj",
    [tailguard.BreakerMetrics.failure_rate, tailguard.BreakerTransition.to_state],
    ids=["BreakerMetrics.failure_rate", "BreakerTransition.to_state"],
)
def test_fields_of_report_classes_are_documented(obj: object) -> None:
    # Once undocumented: `get_all` fields take their docs from the Rust field's comment.
    assert _doc(obj)
