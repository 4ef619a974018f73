"""Functional coverage as a campaign plugin (``riscv_iommu.coverage:campaign_plugin``).

A campaign (``riscv_iommu.campaign``) asks the plugin for a fresh
:class:`SeedCoverage` per seed; its ``on_model(iommu)`` attaches a
:class:`~riscv_iommu.coverage.Collector` to the model the generator builds and
``result()`` returns the seed's hits as JSON-able data.  ``merge`` folds the
results into a :class:`~riscv_iommu.coverage.Coverage` in seed order and says
which bins each seed added (the campaign keeps those seeds); ``report``
writes ``coverage.json``, ``coverage.txt``, ``coverage.md`` and
``coverage.html`` (with the closure plot: coverage against seeds, when the
``plot`` extra is installed).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

from .collector import Collector
from .data import Coverage, CoverageFileError
from .report import html_report, markdown_report, text_report

__all__ = ["SeedCoverage", "CoveragePlugin", "campaign_plugin"]


class SeedCoverage:
    """Collects one seed's coverage (``label``: the seed, when the campaign gives it)."""

    def __init__(self, label: Optional[int] = None) -> None:
        self.label = label
        self.col = Collector()

    def on_model(self, iommu: Any) -> None:
        """Observe the seed's model (before its first step)."""
        self.col.attach(iommu)

    def result(self) -> Dict[str, Any]:
        """The seed's hits: ``{"label": seed or None, "hits": {bin: count}}``."""
        return {"label": self.label, "hits": dict(self.col.hits)}


class CoveragePlugin:
    """The campaign plugin of functional coverage."""

    name = "coverage"

    def collector(self, seed: Optional[int] = None) -> SeedCoverage:
        """A collector for one seed."""
        return SeedCoverage(seed)

    def merge(self, total: Optional[Coverage], result: Any) -> Tuple[Coverage, List[str]]:
        """Fold a seed's result into ``total`` (None at first); returns the new total and
        the model bins the seed hit first.  Results without a label are numbered in
        merge order (the campaign merges in seed order)."""
        if total is None:
            total = Coverage()
        if not isinstance(result, dict) or not isinstance(result.get("hits"), dict):
            raise CoverageFileError("a seed's coverage result must be {'label', 'hits'}")
        label = result.get("label")
        if label is None:
            label = len(total.runs)
        run = Coverage.of_run(label, result["hits"])
        new = sorted(n for n in run.covered() if n not in total.hits)
        return total.merge(run), new

    def report(self, total: Coverage, out_dir: str) -> List[str]:
        """Write the coverage reports into ``out_dir``; returns the paths written."""
        os.makedirs(out_dir, exist_ok=True)
        paths = []
        path = os.path.join(out_dir, "coverage.json")
        total.save(path)
        paths.append(path)
        for name, text in (
            ("coverage.txt", text_report(total, missing=True)),
            ("coverage.md", markdown_report(total, title="Functional coverage of a campaign")),
            ("coverage.html", html_report(total, title="riscv-iommu campaign coverage")),
        ):
            path = os.path.join(out_dir, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            paths.append(path)
        return paths


#: The plugin object a campaign loads by default.
campaign_plugin = CoveragePlugin()
