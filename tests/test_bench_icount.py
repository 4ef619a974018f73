"""benchmarks/bench_icount.py: instructions per translation counted by valgrind."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_icount  # noqa: E402


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-case"], "unknown case(s) ['no-such-case']"),
        (["--rotations", "0"], "--rotations must be >= 1"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_icount", *argv])
    monkeypatch.setattr(shutil, "which", lambda _: "/usr/bin/valgrind")
    with pytest.raises(SystemExit) as e:
        bench_icount.main()
    assert e.value.code == 2
    assert message in capsys.readouterr().out


def test_without_valgrind_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_icount"])
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(SystemExit) as e:
        bench_icount.main()
    assert e.value.code == 2
    assert "valgrind is not installed" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_counts_the_instructions_of_a_translation() -> None:
    # the shortcut case: one request per rotation; a translation costs thousands of
    # instructions (16,000 interpreted, fewer compiled), never zero or millions
    n = bench_icount._instructions("ref-sv39x4-iotlb-hit", 20)
    m = bench_icount._instructions("ref-sv39x4-iotlb-hit", 40)
    per = (m - n) / 20
    assert 1_000 < per < 100_000
