"""Request streams: which PASID touches which page, deterministically from a seed.

A stream is a list of ``(g, page, msi)``: global PASID ``g`` (0-based, see
:mod:`riscv_iommu.study.systems`), page index within its buffer, and whether
the request is an MSI write instead.  Every random number comes from
``random.Random(seed).random()``, whose sequence Python keeps stable across
versions; nothing depends on the system, so every system of a comparison sees
the same stream.

Patterns (``pasids`` PASIDs of ``pages`` pages each):

* ``sequential``: PASIDs in turn, a burst of :data:`BURST` requests each,
  every PASID streaming through its pages (next page each request);
* ``strided``: the same with a stride of :data:`STRIDE` pages;
* ``uniform``: PASID and page uniformly at random;
* ``zipf``: PASID and page Zipf-distributed with exponent :data:`ZIPF_S`
  (a hot set: PASID 0 and page 0 are the hottest).
"""

from __future__ import annotations

import random
import zlib
from bisect import bisect_right
from itertools import accumulate
from typing import List, Tuple

__all__ = ["stream", "seed_of", "Item", "BURST", "STRIDE", "ZIPF_S"]

#: requests per PASID visit in the sequential and strided patterns
BURST = 4
#: page stride of the strided pattern
STRIDE = 7
#: Zipf exponent of the zipf pattern
ZIPF_S = 1.2

#: (global PASID, page, MSI write)
Item = Tuple[int, int, bool]


def seed_of(seed: int, *parts: object) -> int:
    """A seed for one point of the study: ``seed`` mixed with the point's name
    (CRC-32 of its text, stable across runs and Python versions)."""
    text = "/".join(str(p) for p in parts)
    return (seed << 32) ^ zlib.crc32(text.encode())


def _zipf_cdf(n: int) -> List[float]:
    weights = [1.0 / (k + 1) ** ZIPF_S for k in range(n)]
    total = sum(weights)
    return [w / total for w in accumulate(weights)]


def _pick(cdf: List[float], u: float) -> int:
    return min(bisect_right(cdf, u), len(cdf) - 1)


def stream(
    pattern: str, pasids: int, pages: int, n: int, msi_fraction: float, seed: int
) -> List[Item]:
    """``n`` requests of ``pattern`` over ``pasids`` x ``pages``."""
    rnd = random.Random(seed).random
    out: List[Item] = []
    if pattern in ("sequential", "strided"):
        step = 1 if pattern == "sequential" else STRIDE
        cursor = [0] * pasids
        for i in range(n):
            g = (i // BURST) % pasids
            page = cursor[g]
            cursor[g] = (page + step) % pages
            out.append((g, page, rnd() < msi_fraction))
    elif pattern == "uniform":
        for _ in range(n):
            g = int(rnd() * pasids)
            page = int(rnd() * pages)
            out.append((g, page, rnd() < msi_fraction))
    elif pattern == "zipf":
        gcdf = _zipf_cdf(pasids)
        pcdf = _zipf_cdf(pages)
        for _ in range(n):
            g = _pick(gcdf, rnd())
            page = _pick(pcdf, rnd())
            out.append((g, page, rnd() < msi_fraction))
    else:
        raise ValueError(f"pattern: {pattern!r} is not a known access pattern")
    return out
