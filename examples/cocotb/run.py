"""Build pte_check.v with Icarus Verilog and run the cocotb tests (cocotb's Python runner).

    python run.py            # the golden-model sweep and the pyuvm test: all pass
    python run.py --broken   # BROKEN=1: the scoreboard catches the RTL bug (tests fail)

``make`` does the same through cocotb's Makefile flow.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping, Optional, Union

from cocotb_tools.runner import get_runner

HERE = Path(__file__).resolve().parent
TEST_MODULES = "test_pte_check,test_pte_check_uvm"


def run(
    build_dir: Union[str, Path] = HERE / "sim_build",
    broken: bool = False,
    test_module: str = TEST_MODULES,
    extra_env: Optional[Mapping[str, str]] = None,
    results_xml: Optional[Union[str, Path]] = None,
) -> Path:
    """Build and simulate; returns the results XML file (cocotb's xUnit results)."""
    if str(HERE) not in sys.path:  # the simulator's Python finds the test modules here
        sys.path.insert(0, str(HERE))
    runner = get_runner("icarus")
    runner.build(
        sources=[HERE / "pte_check.v"],
        hdl_toplevel="pte_check",
        parameters={"BROKEN": int(broken)},
        build_dir=build_dir,
        always=True,
        timescale=("1ns", "1ps"),
    )
    return runner.test(
        hdl_toplevel="pte_check",
        test_module=test_module,
        build_dir=build_dir,
        test_dir=build_dir,
        extra_env=dict(extra_env or {}),
        results_xml=None if results_xml is None else str(results_xml),
    )


if __name__ == "__main__":
    from cocotb_tools.check_results import get_results

    tests, failed = get_results(run(broken="--broken" in sys.argv[1:]))
    print(f"{tests - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
