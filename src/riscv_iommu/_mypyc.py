"""``mypyc_attr`` for the optional compiled build, with no run-time dependency.

mypyc reads the decorator when it compiles a class (type checkers see the
real one from ``mypy_extensions``); at run time, interpreted or compiled, it
is a no-op, so the package needs nothing beyond the standard library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr as mypyc_attr
else:
    _T = TypeVar("_T")

    def mypyc_attr(*attrs: str, **kwattrs: Any) -> Callable[[_T], _T]:
        """No-op at run time."""
        return lambda cls: cls

__all__ = ["mypyc_attr", "compiled"]


def compiled() -> bool:
    """Whether this is the compiled build (the translation modules are C extensions)."""
    from . import translate

    return (translate.__file__ or "").endswith((".so", ".pyd"))
