"""A campaign plugin for the tests: bins are facts about the model each seed ran on."""

from __future__ import annotations

import json
import os
from typing import Any, List, Optional, Tuple

import riscv_iommu as rv


class Collector:
    def __init__(self) -> None:
        self.iommu: Optional[rv.Iommu] = None

    def on_model(self, iommu: rv.Iommu) -> None:
        self.iommu = iommu

    def result(self) -> Any:
        io = self.iommu
        assert io is not None
        return sorted(
            {
                f"ddtp_mode:{io.ddtp_mode}",
                f"be:{int(io.be)}",
                f"gipc:{int(io.caps.gipc)}",
                f"pas:{io.caps.pas}",
            }
        )


class Plugin:
    name = "test-bins"

    def collector(self, seed: Optional[int] = None) -> Collector:
        assert isinstance(seed, int)  # the campaign labels each collector with its seed
        return Collector()

    def merge(self, total: Any, result: Any) -> Tuple[Any, List[str]]:
        total = dict(total or {})
        new = [b for b in result if b not in total]
        for b in result:
            total[b] = total.get(b, 0) + 1
        return total, new

    def report(self, total: Any, out_dir: str) -> List[str]:
        path = os.path.join(out_dir, "bins.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(total, fh, sort_keys=True)
        return [path]


PLUGIN = Plugin()


def make() -> Plugin:
    return Plugin()


NOT_A_PLUGIN = 42
