"""types.success_response: the hot path's Response constructor builds exactly the
Response the keyword constructor builds, in both of its ways."""

from __future__ import annotations

import dataclasses
import random

import pytest

import riscv_iommu.types as T
from riscv_iommu._mypyc import compiled
from riscv_iommu.types import Response, Status, success_response


def _cases() -> list[tuple[int, bool, bool, bool, bool, bool, int, bool, int, int, int]]:
    rng = random.Random(7)
    out = []
    for _ in range(50):
        b = [rng.random() < 0.5 for _ in range(6)]
        out.append(
            (
                rng.getrandbits(64),
                b[0], b[1], b[2], b[3], b[4],
                rng.randrange(3),
                b[5],
                1 << rng.randrange(12, 57),
                rng.getrandbits(12),
                rng.getrandbits(12),
            )
        )  # fmt: skip
    return out


@pytest.mark.parametrize("bare", [True, False])
def test_success_response_equals_the_keyword_constructor(
    bare: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(T, "_BARE_RESPONSES", bare)  # interpreted: both ways are taken
    for addr, r, w, x, g, priv, pbmt, s, size, rcid, mcid in _cases():
        got = success_response(addr, r, w, x, g, priv, pbmt, s, size, rcid, mcid)
        want = Response(
            Status.SUCCESS, addr, r=r, w=w, x=x, g=g, priv=priv, pbmt=pbmt, s=s, size=size,
            rcid=rcid, mcid=mcid,
        )  # fmt: skip
        assert got == want
        assert type(got) is Response and type(got.status) is Status
        # every field is set (no slot left empty) and the object is an ordinary Response
        assert dataclasses.replace(got, addr=1).addr == 1
        assert repr(got) == repr(want)


def test_bare_allocation() -> None:
    assert T._bare_allocation(Response) is (not compiled())
    assert T._bare_allocation(int) is False  # a type with its own __new__
