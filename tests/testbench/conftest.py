"""Say loudly, at the end of the run, when the cocotb tests were skipped."""

from __future__ import annotations

from typing import Any

from tbhelpers import skipped


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if skipped:
        terminalreporter.write_sep("!", "cocotb tests skipped", yellow=True, bold=True)
        terminalreporter.write_line(skipped[0])
