"""Coroutine wrappers that take the wrapped function's own parameters.

``async def wrapper(*args, **kwargs): ... await fn(*args, **kwargs)`` packs a tuple and a dict
on every call and unpacks them again: about 60 ns of the ~140 ns a wrapping coroutine costs on
CPython 3.11. When ``fn`` is a plain function whose parameters are all named, the wrapper is
compiled from a template with exactly those parameters and passes them on as ``fn`` binds them
(positional-only by position, keyword-only by keyword), so a call binds the same way, and fails
the same way, as a call of ``fn``. The wrapper's defaults are ``fn``'s own objects (its
``__defaults__`` and a copy of its ``__kwdefaults__``, taken when it is decorated). Any other
callable (``*args``/``**kwargs``, a partial, a bound method, a callable object, a parameter
named like one of the template's own names) gets the template with ``*args, **kwargs``.

A template is the source of a function ``make(...)`` that returns the wrapper; it writes
``{params}`` for the wrapper's parameters, ``{call}`` for the arguments of the call of ``fn``,
and ``{args}`` / ``{kwargs}`` for a tuple and a dict of them (for a slow path that calls ``fn``
again later).
"""

from __future__ import annotations

import functools
import inspect
import linecache
import types
from typing import Any, Callable, Dict, NamedTuple, Optional

# Parameter lists whose compiled wrapper is kept, per template (the oldest is forgotten first).
_CACHED = 256


class _Parameters(NamedTuple):
    params: str
    call: str
    args: str
    kwargs: str


_GENERIC = _Parameters("*args, **kwargs", "*args, **kwargs", "args", "kwargs")


def _parameters(fn: Callable[..., Any], taken: set[str]) -> Optional[_Parameters]:
    """``fn``'s parameters as template text, or ``None`` if it needs the generic wrapper
    (``taken``: the names a parameter must not have)."""
    if type(fn) is not types.FunctionType:
        return None
    code = fn.__code__
    if code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS):
        return None
    positional = code.co_varnames[: code.co_argcount]
    keyword = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    if taken.intersection((*positional, *keyword)):
        return None
    # A parameter with a default gets a placeholder; `wrap` puts `fn`'s defaults in its place.
    defaulted = {*positional[len(positional) - len(fn.__defaults__ or ()) :]}
    defaulted |= {*(fn.__kwdefaults__ or {})}
    named = [f"{name}=None" if name in defaulted else name for name in (*positional, *keyword)]
    posonly = code.co_posonlyargcount
    params = named[:posonly]
    if posonly:
        params.append("/")
    params += named[posonly : len(positional)]
    if keyword:
        params.append("*")
        params += named[len(positional) :]
    call = [*positional, *(f"{name}={name}" for name in keyword)]
    return _Parameters(
        params=", ".join(params),
        call=", ".join(call),
        args="(" + "".join(f"{name}, " for name in positional) + ")",
        kwargs="{" + ", ".join(f"{name!r}: {name}" for name in keyword) + "}",
    )


def _names(code: types.CodeType) -> set[str]:
    """Every name a template's code uses, its nested functions' included."""
    found = {*code.co_varnames, *code.co_freevars, *code.co_cellvars, *code.co_names}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _names(const)
    return found


class Template:
    """A wrapper template (see the module's docstring). Its ``make`` is compiled once per
    parameter list (and kept, up to ``_CACHED`` lists), so decorating many functions, or one
    function again and again, costs a closure each, not a compilation."""

    def __init__(self, source: str, label: str) -> None:
        self._source = source
        self._label = label
        generic = compile(source.format(**_GENERIC._asdict()), label, "exec")
        # Names a parameter of `fn` must not take (it would shadow the template's own).
        self._taken = _names(generic) - {"args", "kwargs"}
        self._makers: Dict[_Parameters, Callable[..., Callable[..., Any]]] = {}

    def _maker(self, parameters: _Parameters) -> Callable[..., Callable[..., Any]]:
        maker = self._makers.get(parameters)
        if maker is None:
            source = self._source.format(**parameters._asdict())
            # A file name per parameter list, with the source in linecache: tracebacks that
            # go through the `traceback` module (logging, pytest) show the wrapper's lines.
            filename = f"<{self._label} ({parameters.params})>"
            lines = source.splitlines(keepends=True)
            linecache.cache[filename] = (len(source), None, lines, filename)
            scope: Dict[str, Any] = {}
            exec(compile(source, filename, "exec"), {"__builtins__": __builtins__}, scope)
            maker = scope["make"]
            if len(self._makers) >= _CACHED:
                forgotten = f"<{self._label} ({next(iter(self._makers)).params})>"
                linecache.cache.pop(forgotten, None)
                del self._makers[next(iter(self._makers))]
            self._makers[parameters] = maker
        return maker

    def wrap(self, fn: Callable[..., Any], /, **closure: Any) -> Callable[..., Any]:
        """The wrapper of ``fn``, made by the template's ``make(**closure)``, with ``fn``'s
        name, docstring and ``__wrapped__`` (``functools.wraps``)."""
        parameters = _parameters(fn, self._taken) or _GENERIC
        wrapper: Callable[..., Any] = self._maker(parameters)(**closure)
        own = isinstance(fn, types.FunctionType) and isinstance(wrapper, types.FunctionType)
        if parameters is not _GENERIC and own:
            # The placeholders' values: `fn`'s own default objects.
            wrapper.__defaults__ = fn.__defaults__
            wrapper.__kwdefaults__ = None if fn.__kwdefaults__ is None else {**fn.__kwdefaults__}
        return functools.wraps(fn)(wrapper)
