"""The cocotb tests need Icarus Verilog and the [cocotb] extra: skip loudly without them
(fail under CI, where scripts/test installs them)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import List, Optional

import pytest

ENABLE = (
    "enable them: install Icarus Verilog (Debian/Ubuntu, as root: apt-get install iverilog) "
    "and the extra (.venv/bin/pip install -e '.[cocotb]'); bash scripts/test does both where "
    "it can"
)
skipped: List[str] = []


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package (cocotbext)
        return False


def missing_tools(need_make: bool = False) -> Optional[str]:
    """What is missing to run the cocotb tests, or None."""
    gone = [name for name in ("cocotb", "cocotb_tools", "cocotbext.axi", "pyuvm") if not _has(name)]
    if shutil.which("iverilog") is None:
        gone.append("iverilog (Icarus Verilog)")
    if need_make and shutil.which("make") is None:
        gone.append("make")
    return ", ".join(gone) or None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_simulator(need_make: bool = False) -> None:
    """Skip the calling test (fail it under CI) when the simulator or packages are missing."""
    gone = missing_tools(need_make)
    if gone is None:
        return
    message = f"cocotb tests NOT RUN: missing {gone}; {ENABLE}"
    if in_ci():
        pytest.fail(message)
    skipped.append(message)
    pytest.skip(message)
