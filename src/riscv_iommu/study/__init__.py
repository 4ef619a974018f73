"""What GIPC costs and saves: a reproducible architecture study (``riscv-iommu study``).

The model sees every structure read, so it can count exactly what a
translation costs, structure by structure, for classic device assignment and
for both GIPC revisions, how the caches behave when one device's PASIDs serve
many VMs, and what binding, rebinding and unbinding a PASID costs::

    from riscv_iommu import study
    result = study.run(study.PRESETS["quick"])       # or study.StudyConfig(...)
    print(result.tables())
    study.write_report(result, "out/")                # study.json, *.png, report.html

Everything is deterministic: the same config (seed included) gives the same
JSON.  Plots need the optional ``[plot]`` extra (matplotlib), imported only
when plots are drawn; without it the report has the tables only.  The
systems, workloads and measures are described in ``docs/study-gipc.md``.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Dict, List, Optional

from .config import (
    CACHES,
    EXPERIMENTS,
    MAX_PASIDS,
    MAX_VMS,
    PAGE_SIZES,
    PATTERNS,
    POLICIES,
    PRESETS,
    SYSTEMS,
    StudyConfig,
)
from .experiments import Task, run_task, tasks

__all__ = [
    "StudyConfig",
    "StudyResult",
    "run",
    "write_report",
    "PRESETS",
    "SYSTEMS",
    "PATTERNS",
    "PAGE_SIZES",
    "CACHES",
    "POLICIES",
    "EXPERIMENTS",
    "MAX_VMS",
    "MAX_PASIDS",
    "SCHEMA_VERSION",
]

#: Version of the result's JSON layout.
SCHEMA_VERSION = 1

#: progress(done, total, what): called before each task and once at the end
Progress = Callable[[int, int, str], None]


class StudyResult:
    """The result of :func:`run`: ``data`` holds plain JSON values."""

    def __init__(self, data: Dict[str, Any]) -> None:
        self.data = data

    @property
    def config(self) -> StudyConfig:
        """The config that produced this result."""
        return StudyConfig.from_dict(self.data["config"])

    def to_json(self) -> str:
        """The result as JSON text (sorted keys: equal results give equal text)."""
        return json.dumps(self.data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "StudyResult":
        """A result read back from :meth:`to_json` text."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("v") != SCHEMA_VERSION:
            raise ValueError(f"not a study result of schema version {SCHEMA_VERSION}")
        return cls(data)

    def tables(self) -> str:
        """The terminal tables of every experiment."""
        from .report import text_tables

        return text_tables(self.data)


def _label(task: Task) -> str:
    exp, kind, arg = task
    return f"{exp} {kind}" + ("" if arg is None else f" {arg}")


def run(
    config: Optional[StudyConfig] = None,
    progress: Optional[Progress] = None,
    jobs: int = 1,
) -> StudyResult:
    """Run the study of ``config`` (default: the ``default`` preset).

    ``jobs`` > 1 runs independent tasks in that many worker processes; the
    result is the same.  ``progress(done, total, what)`` reports each task.
    """
    cfg = (config or PRESETS["default"]).validate()
    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= 64:
        raise ValueError("jobs: must be an integer within 1..64")
    todo = tasks(cfg)
    cfg_data = cfg.as_dict()
    results: List[Dict[str, Any]] = []
    total = len(todo)
    if jobs == 1 or total == 1:
        for k, task in enumerate(todo):
            if progress is not None:
                progress(k, total, _label(task))
            results.append(run_task(cfg_data, task))
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, total)) as pool:
            futures = [pool.submit(run_task, cfg_data, t) for t in todo]
            for k, (task, fut) in enumerate(zip(todo, futures, strict=True)):
                if progress is not None:
                    progress(k, total, _label(task))
                results.append(fut.result())
    if progress is not None:
        progress(total, total, "")
    data: Dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "tool": "riscv-iommu study",
        "config": cfg_data,
        "experiments": {exp: [] for exp in cfg.experiments},
    }
    faults = 0
    for (exp, _, _), res in zip(todo, results, strict=True):
        data["experiments"][exp].append(res)
        faults += _faults(res)
    data["faults"] = faults
    return StudyResult(data)


def _faults(res: Dict[str, Any]) -> int:
    n = int(res.get("faults", 0))
    for p in res.get("points", []):
        n += int(p.get("faults", 0))
    return n


def write_report(
    result: StudyResult,
    outdir: str,
    plots: Optional[bool] = None,
    markdown: Optional[str] = None,
) -> Dict[str, str]:
    """Write ``study.json``, the plots (PNG) and ``report.html`` into ``outdir``.

    ``plots``: None draws them when matplotlib is installed, True requires it
    (ImportError otherwise), False writes tables only.  ``markdown``: also
    write the results document (docs/study-gipc.md) to that path, its figures
    linked relative to it.  Returns {what: path} of every file written.
    """
    from .report import write

    os.makedirs(outdir, exist_ok=True)
    return write(result.data, outdir, plots, markdown)
