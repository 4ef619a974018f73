"""The GIPC study (``riscv_iommu.study``, ``riscv-iommu study``).

The arithmetic tests count reads by hand for an Sv39 first stage with an
Sv39x4 G-stage, a 3-level DDT of 64-byte DCs and a PD20 PDT:

* a first-stage walk reads 3 PTEs (levels 2, 1, 0) and a G-stage walk 3 PTEs
  (levels 2, 1, 0) for every GPA it translates;
* classic (and GIPC 2025) first-stage tables are in guest memory: each of the
  3 first-stage PTE addresses is a GPA, translated by a 3-read G-stage walk
  (9 reads), and the final GPA takes 3 more: 3 + 9 + 3 = 15 reads when the DC
  and PC are cached and the IOTLB misses (no G-stage walk cache);
* GIPC 2024 first-stage tables sit at SPAs: 3 first-stage PTEs + 3 G-stage
  PTEs for the final GPA = 6 reads;
* cold, classic adds the DDT walk (2 non-leaf DDTEs + the DC) and the PDT
  walk in guest memory (2 PDTEs + the PC, each of the 3 addresses G-stage
  translated: 9 reads): 3 + 12 + 15 = 30 reads; GIPC 2024 reads the PDT at
  SPAs: 3 + 3 + 6 = 12; GIPC 2025 (PDT at SPAs, first stage at GPAs):
  3 + 3 + 15 = 21.  A read is one structure: the 64-byte DC is one read of 64
  bytes, the PC one of 16 (base), 64 (GIPC 2024 with MSI_FLAT) or 32 bytes
  (GIPC 2025).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import riscv_iommu as rv
from riscv_iommu import study
from riscv_iommu.study import workload
from riscv_iommu.study.experiments import params_for, tasks
from riscv_iommu.study.probe import Probe
from riscv_iommu.study.systems import (
    DEVICE,
    IOVA_BASE,
    MSI_IOVA,
    LazyAllocator,
    build,
)

QUICK = study.PRESETS["quick"]


def _one(
    kind: str, sizes: Dict[str, int], warm: List[Tuple[int, int, bool]], item: Tuple[int, int, bool]
) -> Probe:
    sysm = build(kind, 2, 2, 16, 4096, bind=[0, 1])
    iommu = sysm.fresh_iommu(params_for(QUICK, sizes))
    for it in warm:
        assert iommu.translate(sysm.request(*it)).fault is None
    probe = Probe()
    iommu.attach(probe)
    rsp = iommu.translate(sysm.request(*item))
    iommu.detach(probe)
    assert rsp.fault is None
    return probe


@pytest.mark.parametrize(
    "kind, reads",
    [
        ("classic", {"S_PTE": 3, "G_PTE_s1": 9, "G_PTE_final": 3}),
        ("classic-1vm", {"S_PTE": 3, "G_PTE_s1": 9, "G_PTE_final": 3}),
        ("gipc-2024", {"S_PTE": 3, "G_PTE_final": 3}),
        ("gipc-2025", {"S_PTE": 3, "G_PTE_s1": 9, "G_PTE_final": 3}),
    ],
)
def test_iotlb_miss_with_dc_and_pc_cached_hand_count(kind: str, reads: Dict[str, int]) -> None:
    """15 reads (Sv39 + Sv39x4, DC and PC cached, IOTLB miss); 6 under GIPC 2024."""
    probe = _one(kind, {"GWALK": 0}, [(0, 0, False)], (0, 1, False))
    assert probe.reads == reads
    assert probe.total() == (6 if kind == "gipc-2024" else 15)
    per = probe.per(1)
    assert per["G_PTE_table"] == reads.get("G_PTE_s1", 0)


@pytest.mark.parametrize(
    "kind, reads",
    [
        (
            "classic",
            {
                "DDTE": 2,
                "DC": 1,
                "PDTE": 2,
                "PC": 1,
                "G_PTE_pdt": 9,
                "S_PTE": 3,
                "G_PTE_s1": 9,
                "G_PTE_final": 3,
            },
        ),
        ("gipc-2024", {"DDTE": 2, "DC": 1, "PDTE": 2, "PC": 1, "S_PTE": 3, "G_PTE_final": 3}),
        (
            "gipc-2025",
            {"DDTE": 2, "DC": 1, "PDTE": 2, "PC": 1, "S_PTE": 3, "G_PTE_s1": 9, "G_PTE_final": 3},
        ),
    ],
)
def test_cold_translation_hand_count(kind: str, reads: Dict[str, int]) -> None:
    """30 / 12 / 21 reads with every cache empty (see the module docstring)."""
    probe = _one(kind, {}, [], (0, 1, False))
    assert probe.reads == reads
    pc = {"classic": 16, "gipc-2024": 64, "gipc-2025": 32}[kind]
    assert probe.bytes["DC"] == 64 and probe.bytes["PC"] == pc
    assert sum(probe.bytes.values()) == 64 + pc + 8 * (sum(reads.values()) - 2)


def test_warm_g_stage_walk_cache_and_iotlb_hit() -> None:
    """With the G-stage walk cache warm an IOTLB miss is 6 reads everywhere; a hit is 0."""
    for kind in study.SYSTEMS:
        assert _one(kind, {}, [(0, 0, False)], (0, 1, False)).reads == {
            "S_PTE": 3,
            "G_PTE_final": 3,
        }
        assert _one(kind, {}, [(0, 1, False)], (0, 1, False)).reads == {}


def test_msi_write_reads() -> None:
    """An MSI write after a DMA of the same PASID: the first stage walks again (the
    model never caches MSI translations in the IOTLB) and reads the MSI PTE (one
    read of 16 bytes); GIPC 2025 has no MSI page table: an ordinary write."""
    p = _one("gipc-2024", {}, [(0, 0, False)], (0, 0, True))
    assert p.reads == {"S_PTE": 3, "MSI_PTE": 1} and p.bytes["MSI_PTE"] == 16
    p = _one("classic", {}, [(0, 0, False)], (0, 0, True))
    # the MSI IOVA's level-1 and level-0 tables are new: 2 G-stage walks of 3
    assert p.reads == {"S_PTE": 3, "G_PTE_s1": 6, "MSI_PTE": 1}
    p = _one("gipc-2025", {}, [(0, 0, False)], (0, 0, True))
    assert p.reads == {"S_PTE": 3, "G_PTE_s1": 6, "G_PTE_final": 3}


def test_cold_experiment_through_run() -> None:
    res = study.run(QUICK.replace(experiments=("cold",)))
    rows = {r["system"]: r["states"] for r in res.data["experiments"]["cold"]}
    assert {k: v["dirs"]["total"] for k, v in rows.items()} == {
        "classic": 15,
        "classic-1vm": 15,
        "gipc-2024": 6,
        "gipc-2025": 15,
    }
    assert {k: v["cold"]["total"] for k, v in rows.items()} == {
        "classic": 30,
        "classic-1vm": 30,
        "gipc-2024": 12,
        "gipc-2025": 21,
    }
    assert rows["gipc-2024"]["iotlb-hit"]["total"] == 0
    assert res.data["faults"] == 0


def test_systems_reach_their_vms_memory() -> None:
    """Every system translates every page of every PASID into its own VM's RAM."""
    for kind in study.SYSTEMS:
        sysm = build(kind, 3, 6, 4, 1 << 21)
        iommu = sysm.fresh_iommu(rv.IommuParams())
        for g in range(6):
            vm = sysm.vms[sysm.vm_of(g)]
            base = vm.ram[0][3]
            for page in range(4):
                rsp = iommu.translate(sysm.request(g, page))
                assert rsp.fault is None
                assert rsp.addr == base + page * (1 << 21) + 0x40
            msi = iommu.translate(sysm.request(g, 0, msi=True))
            assert msi.fault is None
            assert msi.is_msi == (kind != "gipc-2025")
        assert sysm.request(5, 0, True).addr == MSI_IOVA
        d, pid = sysm.target(5)
        assert (d, pid) == ((DEVICE + 5 % 3, 2) if kind == "classic" else (DEVICE, 6))
        assert sysm.request(1, 2).addr == IOVA_BASE + 2 * (1 << 21) + 0x40


def test_faults_are_counted() -> None:
    """A request of a PASID that was never bound faults; the study counts it."""
    from riscv_iommu.study.experiments import measure

    sysm = build("gipc-2024", 1, 2, 1, 4096, bind=[0])
    res = measure(sysm.fresh_iommu(rv.IommuParams()), sysm, [(1, 0, False)], [(1, 0, False)])
    assert res["faults"] == 2 and res["translations"] == 1


def test_lazy_allocator_reserves_without_writing() -> None:
    mem = rv.SparseMemory()
    alloc = LazyAllocator(mem, base=0x1000, limit=1 << 31)
    assert alloc.alloc(1 << 30, 1 << 30) == 1 << 30
    assert mem.pages() == []
    with pytest.raises(ValueError):
        alloc.alloc(4096, 3)
    with pytest.raises(MemoryError):
        alloc.alloc(1 << 30)


def test_same_seed_same_json_other_seed_differs() -> None:
    cfg = QUICK.replace(experiments=("vms", "rebind", "memory"), systems=("gipc-2024",))
    a = study.run(cfg).to_json()
    b = study.run(cfg).to_json()
    assert a == b
    assert study.StudyResult.from_json(a).to_json() == a
    c = study.run(cfg.replace(seed=2, experiments=("vms",))).to_json()
    assert json.loads(c)["experiments"]["vms"] != json.loads(a)["experiments"]["vms"]


def test_parallel_jobs_give_the_same_result() -> None:
    cfg = QUICK.replace(experiments=("cold", "vms"), systems=("gipc-2024", "gipc-2025"))
    seen: List[Tuple[int, int, str]] = []
    par = study.run(cfg, jobs=2, progress=lambda d, t, w: seen.append((d, t, w)))
    assert par.to_json() == study.run(cfg).to_json()
    assert seen[0] == (0, len(tasks(cfg)), "cold gipc-2024") and seen[-1][0] == seen[-1][1]


def test_rebind_costs() -> None:
    res = study.run(QUICK.replace(experiments=("rebind",)))
    rows = {r["system"]: {o["op"]: o for o in r["ops"]} for r in res.data["experiments"]["rebind"]}
    g4 = rows["gipc-2024"]
    assert g4["rebind"]["command_names"] == [
        "IODIR.INVAL_PDT",
        "IOTINVAL.VMA",
        "IOTINVAL.GVMA",
        "IOFENCE.C",
    ]
    assert g4["bind"]["command_names"] == ["IODIR.INVAL_PDT", "IOFENCE.C"]
    assert rows["classic"]["bind"]["commands"] == 0  # an invalid PC becomes valid
    assert g4["unbind"]["command_names"] == ["IODIR.INVAL_PDT", "IOTINVAL.VMA", "IOFENCE.C"]
    # decision #9's GVMA drops the old VM's other PASIDs' entries; other VMs keep theirs
    r = g4["rebind"]
    assert r["reads_before"] == {"pasid": 0, "same_vm": 0, "other_vms": 0}
    assert r["reads_after"]["same_vm"] > 0 and r["reads_after"]["other_vms"] == 0
    assert r["dropped"]["IOTLB"] > 0 and r["dropped"]["PDT"] == 1
    assert "rebind" not in rows["classic-1vm"]
    assert rows["classic"]["rebind"]["dropped"]["DDT"] == 1  # the function's DC
    assert res.data["faults"] == 0


@pytest.fixture(scope="module")
def memory() -> study.StudyResult:
    return study.run(QUICK.replace(experiments=("memory",), systems=("gipc-2024", "classic-1vm")))


def test_memory_per_vm_and_per_pasid(memory: study.StudyResult) -> None:
    rows = {r["system"]: r for r in memory.data["experiments"]["memory"]}
    assert rows["classic-1vm"]["per_vm"] is None
    assert sum(rows["gipc-2024"]["per_vm"].values()) > 4096  # a G-stage table at least
    assert rows["gipc-2024"]["per_pasid"]["simulated memory"] > 4096  # 3 first-stage tables


def _no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """As without the [plot] extra: importing riscv_iommu.study.plots fails."""
    monkeypatch.setitem(sys.modules, "riscv_iommu.study.plots", None)
    monkeypatch.delattr(study, "plots", raising=False)


@pytest.fixture(scope="module")
def quick_all(memory: study.StudyResult) -> study.StudyResult:
    """Every experiment (memory from the fixture above), small."""
    res = study.run(
        QUICK.replace(
            experiments=tuple(e for e in study.EXPERIMENTS if e != "memory"),
            page_sizes=("4k", "1g"),
            patterns=("sequential", "zipf"),
            translations=100,
            warmup=100,
        )
    )
    res.data["experiments"]["memory"] = memory.data["experiments"]["memory"]
    return res


def test_report_without_the_plot_extra(
    quick_all: study.StudyResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No matplotlib: tables only (JSON, HTML, Markdown), no PNG; plots=True is an error."""
    _no_plots(monkeypatch)
    files = study.write_report(quick_all, str(tmp_path), markdown=str(tmp_path / "doc.md"))
    assert set(files) == {"json", "html", "markdown"}
    assert list(tmp_path.glob("*.png")) == []
    page = (tmp_path / "report.html").read_text()
    assert "<img" not in page and "install the [plot] extra" in page and "<table>" in page
    doc = (tmp_path / "doc.md").read_text()
    assert "![Figure" not in doc and "## Figure 1" in doc
    with pytest.raises(ImportError):
        study.write_report(quick_all, str(tmp_path), plots=True)


def test_report_with_the_plot_extra(quick_all: study.StudyResult, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    docs = tmp_path / "docs"
    docs.mkdir()
    files = study.write_report(
        quick_all, str(docs / "study"), plots=True, markdown=str(docs / "study-gipc.md")
    )
    pngs = sorted(p.name for p in (docs / "study").glob("*.png"))
    assert pngs == [f"fig{n}-{e}.png" for n, e in enumerate(study.EXPERIMENTS, 1)]
    for p in (docs / "study").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (docs / "study" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 6
    doc = (docs / "study-gipc.md").read_text()
    for n, exp in enumerate(study.EXPERIMENTS, 1):
        assert f"![Figure {n}](study/fig{n}-{exp}.png)" in doc
    assert files["figure 1"].endswith("fig1-cold.png")
    assert study.write_report(quick_all, str(tmp_path / "x"), plots=False).keys() == {
        "json",
        "html",
    }


def test_every_claim_cites_a_figure(quick_all: study.StudyResult) -> None:
    from riscv_iommu.study.report import claims

    found = claims(quick_all.data)
    assert len(found) >= 10
    for c in found:
        assert "(Figure " in c or "(Figures " in c, c
    text = quick_all.tables()
    for n in range(1, 7):
        assert f"== Figure {n}:" in text
    assert "faults during the study: 0" in text


# ---------------------------------------------------------------------------
# workloads and configs
# ---------------------------------------------------------------------------
def test_patterns() -> None:
    seq = workload.stream("sequential", 3, 5, 12, 0.0, 1)
    assert seq[:5] == [(0, 0, False), (0, 1, False), (0, 2, False), (0, 3, False), (1, 0, False)]
    assert [it[1] for it in workload.stream("strided", 1, 10, 4, 0.0, 1)] == [0, 7, 4, 1]
    uni = workload.stream("uniform", 4, 4, 2000, 0.25, 7)
    assert {it[0] for it in uni} == {0, 1, 2, 3} and {it[1] for it in uni} == {0, 1, 2, 3}
    assert 400 < sum(it[2] for it in uni) < 600
    z = workload.stream("zipf", 100, 8, 2000, 0.0, 3)
    counts = [sum(1 for it in z if it[0] == g) for g in range(3)]
    assert counts[0] > counts[1] > counts[2] > 2000 // 100
    assert workload.stream("zipf", 100, 8, 50, 0.0, 3) == z[:50]
    with pytest.raises(ValueError, match="pattern"):
        workload.stream("bursty", 1, 1, 1, 0.0, 1)
    assert workload.seed_of(1, "a") != workload.seed_of(1, "b") != workload.seed_of(2, "a")


@pytest.mark.parametrize(
    "change, field",
    [
        ({"seed": -1}, "seed"),
        ({"systems": ("classic", "sriov")}, "systems"),
        ({"systems": ("classic", "classic")}, "systems"),
        ({"systems": "classic"}, "systems"),
        ({"experiments": ()}, "experiments"),
        ({"vms": 65537}, "vms"),
        ({"vms": True}, "vms"),
        ({"pasids": 1_000_001}, "pasids"),
        ({"vms": 8, "pasids": 4}, "pasids"),
        ({"pages": 0}, "pages"),
        ({"page_size": "64k"}, "page_size"),
        ({"page_size": "1g", "pages": 129}, "pages"),
        ({"pattern": "x"}, "pattern"),
        ({"msi_fraction": 1.5}, "msi_fraction"),
        ({"msi_fraction": "0.1"}, "msi_fraction"),
        ({"translations": 0}, "translations"),
        ({"warmup": -1}, "warmup"),
        ({"vm_sweep": ()}, "vm_sweep"),
        ({"vm_sweep": (1, 100_000)}, "vm_sweep"),
        ({"vm_sweep": (512,)}, "vm_sweep"),
        ({"cache_sweep": ()}, "cache_sweep"),
        ({"cache_sweep": (-1,)}, "cache_sweep"),
        ({"caches": ("TLB",)}, "caches"),
        ({"policies": ("lfu",)}, "policies"),
        ({"policy": "lfu"}, "policy"),
        ({"patterns": ("x",)}, "patterns"),
        ({"page_sizes": ("8k",)}, "page_sizes"),
        ({"memory_points": (4, 4)}, "memory_points"),
        ({"memory_points": (0, 4)}, "memory_points"),
        ({"cache_defaults": {"DDT": 1}}, "cache_defaults"),
        (
            {"cache_defaults": {"DDT": -1, "PDT": 1, "IOTLB": 1, "MSI": 1, "GWALK": 1}},
            "cache_defaults.DDT",
        ),
    ],
)
def test_config_errors_name_the_field(change: Dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        study.StudyConfig().replace(**change)


def test_config_round_trip_and_scale() -> None:
    big = study.StudyConfig(vms=65536, pasids=1_000_000, vm_sweep=(1, 65536)).validate()
    assert study.StudyConfig.from_dict(big.as_dict()) == big
    with pytest.raises(ValueError, match="^colour: not a study setting"):
        study.StudyConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="jobs"):
        study.run(QUICK, jobs=0)
    with pytest.raises(ValueError, match="schema"):
        study.StudyResult.from_json("[]")
    assert (
        study.StudyResult.from_json(
            study.run(QUICK.replace(experiments=("cold",), systems=("gipc-2024",))).to_json()
        ).config.vms
        == 4
    )


def test_many_pasids_bind_only_those_touched() -> None:
    """10^6 PASIDs are expressible: only the PASIDs the requests touch are bound."""
    cfg = QUICK.replace(
        pasids=1_000_000,
        vms=1000,
        experiments=("vms",),
        systems=("gipc-2024",),
        vm_sweep=(1000,),
        translations=100,
        warmup=50,
    )
    res = study.run(cfg)
    assert res.data["faults"] == 0
    assert res.data["experiments"]["vms"][0]["translations"] == 100


# ---------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------
def cli(*args: str) -> Tuple[int, str, str]:
    from riscv_iommu.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args), stream=out)
        except SystemExit as e:  # argparse errors
            rc = int(e.code or 0)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "args, text",
    [
        (["--vms", "0"], "argument --vms: 0 is not within 1..65536"),
        (["--vms", "x"], "argument --vms: 'x' is not an integer"),
        (["--pasids", "2000000"], "argument --pasids"),
        (["--systems", "classic,sriov"], "argument --systems: 'sriov' is not one of"),
        (["--systems", ","], "argument --systems: needs one or more"),
        (["--msi-fraction", "2"], "argument --msi-fraction: 2.0 is not within 0..1"),
        (["--msi-fraction", "lots"], "argument --msi-fraction: 'lots' is not a number"),
        (["--vm-sweep", "1,,x"], "argument --vm-sweep: 'x' is not an integer"),
        (["--vm-sweep", ","], "argument --vm-sweep: needs a comma-separated list"),
        (["--page-size", "8k"], "argument --page-size: invalid choice"),
        (["--jobs", "0"], "argument --jobs"),
        (["--pasids", "2", "--vms", "4"], "riscv-iommu study: --pasids: 2 is fewer than vms"),
        (["--memory-points", "4"], "riscv-iommu study: --memory-points: needs two"),
        (["--from-json", "/nonexistent.json"], "riscv-iommu study: --from-json:"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: List[str], text: str) -> None:
    rc, out, err = cli("study", "--preset", "quick", *args)
    assert rc == 2
    assert text in err
    assert "Traceback" not in err + out


def test_command_tables_json_and_files(tmp_path: Path) -> None:
    rc, out, err = cli(
        "study",
        "--preset",
        "quick",
        "--experiments",
        "cold",
        "--systems",
        "classic,gipc-2024",
        "--json",
    )
    assert rc == 0 and err == ""
    data = json.loads(out)
    assert [r["system"] for r in data["experiments"]["cold"]] == ["classic", "gipc-2024"]
    (tmp_path / "old.json").write_text(out)
    rc, out, err = cli(
        "study",
        "--from-json",
        str(tmp_path / "old.json"),
        "--out",
        str(tmp_path / "r"),
        "--no-plots",
        "--markdown",
        str(tmp_path / "d.md"),
    )
    assert rc == 0 and "reads of one translation: dirs" in out
    assert "wrote html:" in out and (tmp_path / "d.md").exists()
    rc, out, err = cli(
        "study",
        "--preset",
        "quick",
        "--experiments",
        "cold",
        "--systems",
        "gipc-2025",
        "--seed",
        "3",
        "--msi-fraction",
        "0.5",
        "--out",
        str(tmp_path / "r2"),
    )
    assert rc == 0 and "] 1/1" in err  # the progress bar, on stderr
    (tmp_path / "file").write_text("")
    rc, out, err = cli(
        "study", "--from-json", str(tmp_path / "old.json"), "--out", str(tmp_path / "file")
    )
    assert rc == 2 and "riscv-iommu study: --out:" in err


def test_command_without_matplotlib_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_plots(monkeypatch)
    rc, out, _ = cli(
        "study",
        "--preset",
        "quick",
        "--experiments",
        "cold",
        "--systems",
        "gipc-2024",
        "--no-progress",
        "--out",
        str(tmp_path),
    )
    assert rc == 0 and "no figures: install the [plot] extra" in out


def test_deep_size_counts_each_object_once_and_stops() -> None:
    from riscv_iommu.study.experiments import deep_size

    shared = bytearray(1000)
    inner = [shared, shared]
    size = deep_size([inner])
    assert size == sys.getsizeof(inner) + sys.getsizeof(shared)
    assert deep_size([inner], [shared]) == sys.getsizeof(inner)

    def local() -> None:
        pass

    assert deep_size([[local, deep_size, json, int]]) >= sys.getsizeof(local)
    assert deep_size([[deep_size, json, int, len]]) == sys.getsizeof([0, 0, 0, 0])


def test_model_size_leaves_out_the_port_and_the_observers() -> None:
    # the study's "model" figure: the model's own objects, not an observer attached
    # to it (the suite's coverage collector grows with every run)
    from riscv_iommu.study.experiments import deep_size, model_size

    class Heavy:
        def __init__(self) -> None:
            self.kept = bytearray(1 << 20)

        def __call__(self, event: Any) -> None:
            pass

    mem = rv.SparseMemory()
    mem.write(0x1000, bytes(4096))
    model = rv.Iommu(mem)
    bare = model_size(model, mem)
    assert bare == deep_size([model], [mem])
    heavy = Heavy()
    model.attach(heavy)
    assert deep_size([model], [mem]) > bare + (1 << 20)  # the observer, counted
    assert bare <= model_size(model, mem) < bare + 4096  # left out: the emit hook only
    model.detach(heavy)
    assert model_size(model, mem) == bare
