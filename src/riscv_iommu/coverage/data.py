"""Coverage results: hits per bin, which run hit each bin first, and the runs.

A :class:`Coverage` is what a run (a test, a seed, a testbench session)
produced, or the merge of many.  Merging is associative and commutative:
hits add up, the first run of a bin is the smallest run label (ints sort
before strings, each in their natural order), and the run labels are kept
sorted.  The closure curve (coverage against runs) and the runs that added
new bins come from those first-run labels.

The JSON form (``to_json`` / ``from_json``, files through ``save`` /
``load``)::

    {"format": "riscv-iommu-coverage", "version": 1, "model": "<MODEL_ID>",
     "runs": [0, 1, 2], "hits": {"cause.13.ttyp.2": 5, ...},
     "first": {"cause.13.ttyp.2": 1, ...}}
"""

from __future__ import annotations

import json
from functools import reduce
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union

from .model import BINS, MODEL, MODEL_ID, Bin

__all__ = [
    "FORMAT",
    "VERSION",
    "Label",
    "Coverage",
    "CoverageFileError",
    "merge",
    "load",
]

FORMAT = "riscv-iommu-coverage"
VERSION = 1

#: A run label: a seed (int) or a name (a test's node id, say).
Label = Union[int, str]


class CoverageFileError(ValueError):
    """A coverage file or JSON object that is not valid (names the file and field)."""


def label_key(label: Label) -> Tuple[int, int, str]:
    """Sort key of run labels: ints first in numeric order, then strings."""
    if isinstance(label, int):
        return (0, label, "")
    return (1, 0, label)


def _check_label(label: Any, where: str) -> Label:
    if isinstance(label, bool) or not isinstance(label, (int, str)):
        raise CoverageFileError(f"{where}: a run label is an int or a string, not {label!r}")
    return label


class Coverage:
    """Hits per bin name, the first run of each bin, and the run labels."""

    __slots__ = ("hits", "first", "runs")

    def __init__(
        self,
        hits: Optional[Mapping[str, int]] = None,
        first: Optional[Mapping[str, Label]] = None,
        runs: Iterable[Label] = (),
    ) -> None:
        #: bin name -> hits (bins never hit are absent)
        self.hits: Dict[str, int] = {k: v for k, v in (hits or {}).items() if v}
        #: bin name -> the smallest label of a run that hit it
        self.first: Dict[str, Label] = dict(first or {})
        #: labels of the runs merged here, sorted
        self.runs: List[Label] = sorted(runs, key=label_key)

    @classmethod
    def of_run(cls, label: Label, hits: Mapping[str, int]) -> "Coverage":
        """The coverage of one run."""
        _check_label(label, "label")
        h = {k: v for k, v in hits.items() if v}
        return cls(h, {k: label for k in h}, [label])

    # ------------------------------------------------------------------
    def merge(self, other: "Coverage") -> "Coverage":
        """A new Coverage holding both (associative and commutative)."""
        if not isinstance(other, Coverage):
            raise TypeError("merge() takes a Coverage")
        hits = dict(self.hits)
        for k, v in other.hits.items():
            hits[k] = hits.get(k, 0) + v
        first = dict(self.first)
        for k, lab in other.first.items():
            mine = first.get(k)
            if mine is None or label_key(lab) < label_key(mine):
                first[k] = lab
        return Coverage(hits, first, self.runs + other.runs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Coverage):
            return NotImplemented
        return self.hits == other.hits and self.first == other.first and self.runs == other.runs

    def __repr__(self) -> str:
        n, total = len(self.covered()), len(BINS)
        return f"Coverage({n}/{total} bins, {len(self.runs)} runs)"

    # ------------------------------------------------------------------
    def covered(self, group: Optional[str] = None) -> Set[str]:
        """Names of the model's bins hit (of one group)."""
        return {n for n in self.hits if n in BINS and (group is None or BINS[n].group == group)}

    def missing(self, group: Optional[str] = None) -> List[Bin]:
        """The model's bins never hit (of one group), in model order."""
        return [
            b
            for g in MODEL
            if group is None or g.name == group
            for b in g.bins
            if b.name not in self.hits
        ]

    def outside(self) -> Dict[str, int]:
        """Hits of bin names the model does not have (another model version's)."""
        return {k: v for k, v in sorted(self.hits.items()) if k not in BINS}

    def percent(self, group: Optional[str] = None) -> float:
        """Covered bins in percent of the model's (of one group)."""
        total = len(BINS) if group is None else sum(1 for b in BINS.values() if b.group == group)
        return 100.0 * len(self.covered(group)) / total if total else 100.0

    def closure(self) -> List[Tuple[Label, int]]:
        """(run label, model bins covered once that run is merged), in label order."""
        new: Dict[Label, int] = {}
        for name, lab in self.first.items():
            if name in BINS and name in self.hits:
                new[lab] = new.get(lab, 0) + 1
        out: List[Tuple[Label, int]] = []
        total = 0
        seen: Set[Label] = set()
        for lab in self.runs:
            if lab in seen:
                continue
            seen.add(lab)
            total += new.get(lab, 0)
            out.append((lab, total))
        return out

    def contributing(self) -> List[Label]:
        """The runs that hit a model bin first (the runs worth keeping), sorted."""
        labs = {lab for n, lab in self.first.items() if n in BINS and n in self.hits}
        return sorted(labs, key=label_key)

    # ------------------------------------------------------------------
    def to_json(self) -> Dict[str, Any]:
        """The JSON object of this coverage."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": MODEL_ID,
            "runs": list(self.runs),
            "hits": dict(sorted(self.hits.items())),
            "first": dict(sorted(self.first.items())),
        }

    @classmethod
    def from_json(cls, obj: Any, source: str = "coverage") -> "Coverage":
        """Read a JSON object; :class:`CoverageFileError` names ``source`` and the field."""
        if not isinstance(obj, dict):
            raise CoverageFileError(f"{source}: not a JSON object")
        if obj.get("format") != FORMAT:
            raise CoverageFileError(f"{source}: field 'format': expected {FORMAT!r}")
        if obj.get("version") != VERSION:
            raise CoverageFileError(
                f"{source}: field 'version': {obj.get('version')!r} is not supported "
                f"(this is version {VERSION})"
            )
        runs = obj.get("runs", [])
        hits = obj.get("hits", {})
        first = obj.get("first", {})
        if not isinstance(runs, list):
            raise CoverageFileError(f"{source}: field 'runs': expected a list")
        if not isinstance(hits, dict):
            raise CoverageFileError(f"{source}: field 'hits': expected an object")
        if not isinstance(first, dict):
            raise CoverageFileError(f"{source}: field 'first': expected an object")
        for i, lab in enumerate(runs):
            _check_label(lab, f"{source}: field 'runs[{i}]'")
        for k, v in hits.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise CoverageFileError(
                    f"{source}: field 'hits.{k}': expected a count (int >= 0), not {v!r}"
                )
        for k, lab in first.items():
            _check_label(lab, f"{source}: field 'first.{k}'")
            if k not in hits:
                raise CoverageFileError(f"{source}: field 'first.{k}': the bin has no hits")
        return cls(hits, first, runs)

    def save(self, path: str) -> None:
        """Write the JSON file."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=1)
            f.write("\n")


def load(path: str) -> Coverage:
    """Read a coverage JSON file (errors name the file, line and field)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise CoverageFileError(f"{path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise CoverageFileError(f"{path}: not a UTF-8 text file") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise CoverageFileError(
            f"{path}: line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    return Coverage.from_json(obj, path)


def merge(items: Iterable[Coverage]) -> Coverage:
    """Merge coverages (in any order and grouping: the result is the same)."""
    return reduce(Coverage.merge, items, Coverage())
