"""The fuzz campaign's short version (the long one: ``scripts/fuzz --minutes 10``).

Fixed seeds, so the suite is reproducible: each world is a random IOMMU configuration
with tables, queues and devices, driven by a random mix of MMIO, commands, requests,
page requests, invalidation completions, ticks, register changes, stale in-memory
structures and injected faults (see ``tests/fuzz_campaign.py``).  After every step the
campaign checks that nothing raised, every response and fault record is well formed,
queue indices stay below the queue sizes and every structure of the model stays within
its bound.
"""

from __future__ import annotations

import pytest

import fuzz_campaign as fc


@pytest.mark.parametrize("block", range(8))
def test_campaign_worlds(block: int) -> None:
    """Worlds 20*block .. 20*block+19, 300 steps each, both profiles."""
    for seed in range(20 * block, 20 * block + 20):
        fc.run(seed, 300, "stale" if seed % 3 == 2 else "campaign")


def test_campaign_catches_an_exception_with_its_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness itself: an exception in a step is reported with the seed, the step and
    the last steps (what ``scripts/fuzz`` prints for replay)."""

    def boom(self: fc.World) -> None:
        raise KeyError(9)

    monkeypatch.setattr(fc.World, "do_request", boom)
    with pytest.raises(fc.Failure, match=r"seed 7 \(stale\) step \d+: KeyError: 9"):
        fc.run(7, 50, "stale")


def test_campaign_main_replays_a_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert fc.main(["--seed", "3", "--steps", "40"]) == 0
    assert "seed 3: 40 steps" in capsys.readouterr().out
    assert fc.main(["--examples", "2", "--first-seed", "10", "--steps", "30"]) == 0
    assert "done: 2 worlds (seeds 10..11), 60 steps, 0 failing: []" in capsys.readouterr().out
