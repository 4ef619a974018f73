"""Functional coverage of the RISC-V IOMMU spec (``riscv_iommu.coverage``).

The coverage model is data (:data:`MODEL`: groups of :class:`Bin`, each named
after a spec section, rule or table row); a :class:`Collector` observes the
event stream of any run (tests, scenarios, a cocotb testbench) and counts
hits; a :class:`Coverage` holds the hits of one or many runs, merges
associatively and commutatively, and round-trips through JSON; reports are
a text table, Markdown and a self-contained HTML page with a closure plot
(the ``plot`` extra).  ``riscv-iommu coverage merge|report FILES...`` drives
them from the command line; docs/coverage.md describes the bins.

    from riscv_iommu import coverage
    col = coverage.Collector().attach(iommu)     # observe one model
    ...                                          # run anything
    cov = coverage.Coverage.of_run("my-test", col.hits)
    cov.save("cov.json")
    print(coverage.text_report(cov))
"""

from __future__ import annotations

from .collector import Collector, Config, collect
from .data import Coverage, CoverageFileError, Label, load, merge
from .model import BINS, MODEL, MODEL_ID, Bin, Group
from .plugin import CoveragePlugin, SeedCoverage, campaign_plugin
from .report import closure_png, html_report, markdown_report, text_report

__all__ = [
    "BINS",
    "MODEL",
    "MODEL_ID",
    "Bin",
    "Group",
    "Config",
    "Collector",
    "collect",
    "Coverage",
    "CoverageFileError",
    "Label",
    "load",
    "merge",
    "text_report",
    "markdown_report",
    "html_report",
    "closure_png",
    "CoveragePlugin",
    "SeedCoverage",
    "campaign_plugin",
]
