"""The constrained-random generator: arguments, determinism, profiles, what it builds."""

from __future__ import annotations

import collections
import contextlib
import io
import json
from pathlib import Path
from typing import Any, Counter, Dict, List, Tuple

import pytest

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu import gen, vectors


def cli(*args: str) -> Tuple[int, str, str]:
    from riscv_iommu.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args), stream=out)
        except SystemExit as e:
            rc = int(e.code or 0)
    return rc, out.getvalue(), err.getvalue()


def requests_of(doc: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [s for s in doc["steps"] if s["op"] == "request"]


@pytest.mark.parametrize(
    "args,message",
    [
        ((-1, 4, "mixed"), "seed must be a non-negative int"),
        ((True, 4, "mixed"), "seed must be a non-negative int"),
        ((1, -4, "mixed"), "requests must be a non-negative int"),
        ((1, 4.0, "mixed"), "requests must be a non-negative int"),
        ((1, 4, "fuzzy"), "unknown profile 'fuzzy' (one of mixed, legal, faults, gipc, caching)"),
    ],
)
def test_bad_arguments(args: Any, message: str) -> None:
    with pytest.raises(gen.GenError, match=message.replace("(", r"\(").replace(")", r"\)")):
        gen.generate(*args)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = vectors.dumps(gen.generate(11, 15, "faults"))
    assert a == vectors.dumps(gen.generate(11, 15, "faults"))
    assert a != vectors.dumps(gen.generate(12, 15, "faults"))
    assert a != vectors.dumps(gen.generate(11, 15, "mixed"))


@pytest.mark.parametrize("profile", list(gen.PROFILES))
def test_exactly_the_requested_number_of_requests(profile: str) -> None:
    for seed in range(4):
        d = gen.generate(seed, 17, profile)
        assert len(requests_of(d)) == 17
        assert d["generator"]["seed"] == seed and d["generator"]["profile"] == profile
    assert requests_of(gen.generate(0, 0, profile)) == []


def test_legal_profile_requests_all_succeed() -> None:
    """legal: valid structures, mapped and permitted requests, no injections, no illegal
    commands: every request succeeds and the command queue never reports an error."""
    ops: Counter[str] = collections.Counter()
    for seed in range(25):
        d = gen.generate(seed, 30, "legal")
        for s in d["steps"]:
            ops[s["op"]] += 1
            if s["op"] == "request":
                assert s["expect"]["response"]["status"] == "success", (seed, s)
            if s["op"] == "commands":
                assert not int(s["expect"]["cqcsr"], 16) & F.CQCSR.cmd_ill.mask
        assert not any(f.startswith("broken:") for f in d["generator"]["features"])
    assert ops["request"] == 750
    assert ops["inject"] == ops["datapath_error"] == 0
    assert ops["commands"] > 0 and ops["mem_write"] > 0


def test_faults_profile_reaches_every_cause_class() -> None:
    """faults: broken structures, injections and wild requests produce the spec's fault
    classes: DDT, PDT, page and guest-page faults, misconfigurations, corruption."""
    causes: Counter[int] = collections.Counter()
    ops: Counter[str] = collections.Counter()
    for seed in range(30):
        d = gen.generate(seed, 40, "faults")
        for s in d["steps"]:
            ops[s["op"]] += 1
            for rec in s.get("expect", {}).get("fq", ()):
                causes[rec["cause"]] += 1
            if s["op"] == "request" and s["expect"]["response"]["fault"]:
                causes[s["expect"]["response"]["fault"]["cause"]] += 1
    wanted = {
        rv.Cause.READ_PAGE_FAULT,
        rv.Cause.WRITE_GUEST_PAGE_FAULT,
        rv.Cause.DDT_ENTRY_NOT_VALID,
        rv.Cause.DDT_ENTRY_MISCONFIGURED,
        rv.Cause.TRANSACTION_TYPE_DISALLOWED,
        rv.Cause.PDT_ENTRY_NOT_VALID,
        rv.Cause.PDT_ENTRY_MISCONFIGURED,
        rv.Cause.INTERNAL_DATAPATH_ERROR,
        rv.Cause.DDT_DATA_CORRUPTION,
    }
    assert wanted <= set(causes), wanted - set(causes)
    assert ops["inject"] == ops["clear_injections"] > 0


def test_features_cover_every_mode_and_format() -> None:
    """Across seeds the generator builds every supported mode and format."""
    seen = set()
    for profile in ("mixed", "gipc"):
        for seed in range(45):
            seen.update(gen.generate(seed, 2, profile)["generator"]["features"])
    expected = {
        "ddt:1lvl", "ddt:2lvl", "ddt:3lvl", "dc:base", "dc:extended",
        "s:Sv32", "s:Sv39", "s:Sv48", "s:Sv57",
        "g:Sv32x4", "g:Sv39x4", "g:Sv48x4", "g:Sv57x4",
        "pdt:PD8", "pdt:PD17", "pdt:PD20",
        "gipc:2024-32B", "gipc:2024-64B", "gipc:2025-32B",
        "fctl.BE=0", "fctl.BE=1", "DC.tc.SBE!=fctl.BE",
        "msi:flat", "msi:mrif",
        "leaf:4K", "leaf:64K-NAPOT", "leaf:superpage", "leaf:1G",
        "device:bare", "device:s1", "device:g", "device:s1g", "device:pdt", "device:gipc",
        "broken:dc", "broken:pc", "broken:s-pte", "broken:g-pte",
    }  # fmt: skip
    assert expected <= seen, expected - seen


def test_gipc_profile_sets_the_capability_at_its_bit() -> None:
    for seed in range(5):
        d = gen.generate(seed, 3, "gipc")
        caps = rv.Capabilities.from_raw(int(d["capabilities"], 16), gipc_bit=d["gipc_bit"])
        assert caps.gipc
        assert d["params"]["gipc_revision"] in ("2024", "2025")


def test_caching_profile_is_invalidation_heavy() -> None:
    counts = {}
    for profile in ("caching", "legal"):
        ops: Counter[str] = collections.Counter()
        for seed in range(10):
            ops.update(s["op"] for s in gen.generate(seed, 30, profile)["steps"])
        counts[profile] = ops
    assert counts["caching"]["commands"] > 2 * counts["legal"]["commands"]
    assert counts["caching"]["mem_write"] > 2 * counts["legal"]["mem_write"]


def test_on_model_hook_sees_the_model_that_runs_the_steps() -> None:
    seen: List[rv.Iommu] = []
    d = gen.generate(3, 5, on_model=seen.append)
    assert len(seen) == 1
    assert seen[0].caps.raw == int(d["capabilities"], 16)
    regs = d["final"]["registers"]
    assert seen[0].mmio_read(rv.REG.FQT, 4) == int(regs["fqt"]["value"], 16)


# --------------------------------------------------------------------------
# riscv-iommu gen
# --------------------------------------------------------------------------
def test_gen_command_writes_the_file_and_to_stdout(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    rc, out, err = cli(
        "gen", "--seed", "5", "--requests", "6", "--profile", "gipc", "--out", str(path)
    )
    assert (rc, out, err) == (0, "", "")
    assert path.read_text() == vectors.dumps(gen.generate(5, 6, "gipc"))
    rc, out, _ = cli("gen", "--seed", "0x5", "--requests", "6", "--profile", "gipc")
    assert rc == 0 and out == path.read_text()
    assert json.loads(out)["generator"]["requests"] == 6


@pytest.mark.parametrize(
    "args,message",
    [
        (["--requests", "3"], "the following arguments are required: --seed"),
        (["--seed", "-2"], "argument --seed: expected an integer >= 0, got -2"),
        (["--seed", "x"], "argument --seed: expected an integer, got 'x'"),
        (["--seed", "1", "--requests", "-1"], "argument --requests: expected an integer >= 0"),
        (["--seed", "1", "--profile", "nope"], "argument --profile: invalid choice: 'nope'"),
    ],
)
def test_gen_command_validates_arguments(args: List[str], message: str) -> None:
    rc, out, err = cli("gen", *args)
    assert rc == 2 and out == "" and message in err and "Traceback" not in err


def test_gen_command_unwritable_output(tmp_path: Path) -> None:
    rc, _, err = cli(
        "gen", "--seed", "1", "--requests", "1", "--out", str(tmp_path / "no" / "v.json")
    )
    assert rc == 2
    assert err.startswith(f"riscv-iommu gen: cannot write {tmp_path / 'no' / 'v.json'}: ")


def test_gen_command_json_error(tmp_path: Path) -> None:
    target = str(tmp_path / "no" / "v.json")
    rc, out, _ = cli("gen", "--seed", "1", "--requests", "1", "--out", target, "--json")
    assert rc == 2 and json.loads(out)["error"]["message"].startswith(f"cannot write {target}: ")


#: Every rate at its most: each kind of event happens before every request.
EVERYTHING = gen.Profile(
    "everything",
    "tests: every choice every time",
    broken=0.5,
    inject=0.5,
    wild=0.5,
    gipc=1.0,
    commands=1.0,
    illegal=0.5,
    modify=1.0,
    stale=0.5,
    pri=1.0,
    ats=1.0,
    events=1.0,
    small_caches=0.5,
)
LEGAL_BUSY = gen.Profile(
    "legal-busy",
    "tests: legal, with a change, a batch and an event before every request",
    broken=0.0,
    inject=0.0,
    wild=0.0,
    illegal=0.0,
    stale=0.0,
    commands=1.0,
    modify=1.0,
    pri=1.0,
    ats=1.0,
    events=1.0,
)


@pytest.mark.parametrize("profile", [EVERYTHING, LEGAL_BUSY], ids=lambda p: p.name)
def test_profiles_of_ones_own_replay(profile: gen.Profile) -> None:
    """A Profile object instead of a name; with every rate high each kind of step occurs in
    every seed, and the files still replay (legal ones with every request successful)."""
    ops: Counter[str] = collections.Counter()
    for seed in range(6):
        d = gen.generate(seed, 15, profile)
        assert d["generator"]["profile"] == profile.name
        assert vectors.replay(vectors.loads(vectors.dumps(d))).ok
        for s in d["steps"]:
            ops[s["op"]] += 1
            if s["op"] == "request" and profile.wild == 0:
                assert s["expect"]["response"]["status"] == "success"
    assert ops["request"] == 90 and ops["commands"] >= 90 and ops["tick"] > 0
