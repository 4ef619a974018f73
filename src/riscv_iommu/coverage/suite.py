"""Coverage of a pytest suite: every Iommu the suite builds is observed.

``tests/conftest.py`` registers :class:`SuiteCoverage` when the environment
variable ``RISCV_IOMMU_COVERAGE`` names an output file::

    RISCV_IOMMU_COVERAGE=suite-coverage.json python -m pytest

Each test is one run (labelled with its node id); the merged coverage is
written when the session ends.  Without the variable nothing is registered
and the suite runs as fast as ever.  The collectors do not show in
``Iommu.observers``, but they are observers: a test that checks that an
Iommu with no observer has no event stream (``iommu.emit is None``) fails
in a coverage run.  pytest is not imported here: the hooks
are plain methods that pytest finds by name.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from .._mypyc import compiled
from ..iommu import Iommu
from .collector import Collector
from .data import Coverage, merge

__all__ = ["ENV_VAR", "SuiteCollector", "SuiteCoverage"]

#: The environment variable naming the output file.
ENV_VAR = "RISCV_IOMMU_COVERAGE"

#: label of the hits made outside any test (collection, session fixtures)
OUTSIDE = "(outside tests)"


class SuiteCollector(Collector):
    """The suite's collector: attached to every Iommu, hidden from ``Iommu.observers``
    so that tests which check the observer list see only their own observers."""


class SuiteCoverage:
    """A pytest plugin: attaches a :class:`SuiteCollector` to every Iommu built."""

    def __init__(self, path: str) -> None:
        self.path = path
        #: hits of the current test, shared by every collector
        self.hits: Dict[str, int] = {}
        self.label = OUTSIDE
        self.runs: List[Coverage] = []
        self._orig: Optional[Callable[..., None]] = None
        self._orig_observers: Any = None
        self.install()

    def install(self) -> None:
        """Wrap ``Iommu.__init__`` so each new Iommu gets a collector, and
        ``Iommu.observers`` so that it does not show."""
        if self._orig is not None:
            return
        if compiled():  # a compiled (native) class cannot be wrapped
            raise RuntimeError(
                f"{ENV_VAR} needs the pure-Python build: it wraps Iommu.__init__ "
                "(README, Compiled build)"
            )
        orig = Iommu.__init__
        plugin = self

        def init(iommu: Iommu, *args: Any, **kwargs: Any) -> None:
            orig(iommu, *args, **kwargs)
            SuiteCollector(hits=plugin.hits).attach(iommu)

        shown: Any = Iommu.__dict__["observers"]  # the property object

        def observers(iommu: Iommu) -> Tuple[Any, ...]:
            return tuple(o for o in shown.fget(iommu) if not isinstance(o, SuiteCollector))

        self._orig = orig
        self._orig_observers = shown
        Iommu.__init__ = init  # type: ignore[method-assign, assignment]
        Iommu.observers = property(observers)  # type: ignore[method-assign, assignment]

    def uninstall(self) -> None:
        """Restore ``Iommu.__init__`` and ``Iommu.observers``."""
        if self._orig is not None:
            Iommu.__init__ = self._orig  # type: ignore[method-assign]
            Iommu.observers = self._orig_observers  # type: ignore[method-assign]
            self._orig = None

    def _flush(self) -> None:
        if self.hits:
            self.runs.append(Coverage.of_run(self.label, self.hits))
            self.hits.clear()

    # -- pytest hooks ----------------------------------------------------
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        """A test starts (before its setup): what came before is outside tests."""
        self._flush()
        self.label = nodeid

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        """A test ended (after its teardown)."""
        self._flush()
        self.label = OUTSIDE

    def pytest_sessionfinish(self, session: Any) -> None:
        """Write the merged coverage."""
        self._flush()
        merge(self.runs).save(self.path)

    def pytest_unconfigure(self, config: Any) -> None:
        """Leave Iommu as it was."""
        self.uninstall()
