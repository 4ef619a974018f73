"""Optional compiled build (mypyc) of the same sources; pure Python is the default.

``RISCV_IOMMU_COMPILE=1 pip install --no-build-isolation .`` (with ``mypy``
and ``setuptools`` installed in the environment) compiles the modules of the
translation path and the model's state with mypyc into C extensions; every
other module stays interpreted.  Without the variable this file adds nothing
and the package is pure Python.  README.md ("Compiled build") lists which
modules are compiled and why the others are not.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

#: Modules compiled by mypyc (under src/riscv_iommu): the translation path and
#: what it reads (translate, paging, ioatc, ddt, pdt, msi, ats, iommu,
#: types, _fault, cachestats).  Everything else stays interpreted; the
#: README ("Compiled build") says why for each.
COMPILED = [
    "_fault",
    "ats",
    "cachestats",
    "ddt",
    "ioatc",
    "iommu",
    "msi",
    "paging",
    "pdt",
    "translate",
    "types",
]


def _extensions() -> list:  # type: ignore[type-arg]
    if os.environ.get("RISCV_IOMMU_COMPILE", "") not in ("1", "yes", "true"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        sys.exit(
            "RISCV_IOMMU_COMPILE=1 needs mypy (mypyc) in the build environment: "
            "pip install mypy setuptools && "
            "RISCV_IOMMU_COMPILE=1 pip install --no-build-isolation ."
        )
    paths = [os.path.join("src", "riscv_iommu", f"{m}.py") for m in COMPILED]
    return mypycify(paths, opt_level=os.environ.get("RISCV_IOMMU_OPT", "3"))  # type: ignore[no-any-return]


setup(ext_modules=_extensions())
