"""Make tests/helpers.py importable as `helpers`; functional coverage on request."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    # RISCV_IOMMU_COVERAGE=FILE: observe every Iommu the suite builds and write the
    # merged functional coverage to FILE (docs/coverage.md); off by default
    path = os.environ.get("RISCV_IOMMU_COVERAGE")
    if path:
        from riscv_iommu.coverage.suite import SuiteCoverage

        config.pluginmanager.register(SuiteCoverage(path), "riscv-iommu-coverage")
