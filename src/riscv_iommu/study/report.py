"""The study's outputs: terminal tables, JSON, PNG figures, one HTML page, the results doc.

Tables are built once (:func:`tables_of`) and rendered as text, HTML or
Markdown.  Figures come from :mod:`riscv_iommu.study.plots` (matplotlib, the
``[plot]`` extra), imported only when plots are drawn.  :func:`claims` turns
the numbers into the findings of ``docs/study-gipc.md``, each citing its
figure.
"""

from __future__ import annotations

import base64
import html
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .config import EXPERIMENTS, PAGE_SIZES, SYSTEMS
from .probe import STRUCTURES

__all__ = ["FIGURES", "tables_of", "text_tables", "claims", "markdown", "html_page", "write"]

#: experiment -> (figure number, PNG file name, caption)
FIGURES: Dict[str, Tuple[int, str, str]] = {
    "cold": (1, "fig1-cold.png", "Reads of one translation, structure by structure"),
    "caches": (2, "fig2-caches.png", "Reads per translation against cache capacity"),
    "vms": (3, "fig3-vms.png", "Hit rates against the number of VMs"),
    "workloads": (4, "fig4-workloads.png", "Access patterns and page sizes"),
    "rebind": (5, "fig5-rebind.png", "The cost of binding, rebinding and unbinding a PASID"),
    "memory": (6, "fig6-memory.png", "The model's memory per VM and per PASID"),
}

_SHORT = {
    "DDTE": "DDTE",
    "DC": "DC",
    "PDTE": "PDTE",
    "PC": "PC",
    "S_PTE": "S-PTE",
    "G_PTE_pdt": "G(PDT)",
    "G_PTE_s1": "G(S-PTE)",
    "G_PTE_final": "G(final)",
    "G_PTE_other": "G(other)",
    "MSI_PTE": "MSI-PTE",
    "MRIF": "MRIF",
}

Table = Tuple[str, List[str], List[List[str]]]


def _n(v: float) -> str:
    """A count per translation: integers bare, others with two decimals."""
    return f"{v:.0f}" if v == int(v) else f"{v:.2f}"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def _kib(v: Optional[float]) -> str:
    return "-" if v is None else f"{v / 1024:.1f}"


def _cold_tables(rows: List[Dict[str, Any]]) -> List[Table]:
    used = [s for s in STRUCTURES if any(st[s] for r in rows for st in r["states"].values())]
    out = []
    for state in rows[0]["states"]:
        body = [
            [r["system"]]
            + [_n(r["states"][state][s]) for s in used]
            + [_n(r["states"][state]["total"]), _n(r["states"][state]["bytes"])]
            for r in rows
        ]
        out.append(
            (
                f"reads of one translation: {state}",
                ["system"] + [_SHORT[s] for s in used] + ["total", "bytes"],
                body,
            )
        )
    return out


def _caches_tables(rows: List[Dict[str, Any]]) -> List[Table]:
    cols = [f"{r['system']} {r['policy']}" for r in rows]
    keys = [(p["cache"], p["capacity"]) for p in rows[0]["points"]]
    body = []
    for k, (cache, cap) in enumerate(keys):
        body.append([cache, str(cap)] + [_n(r["points"][k]["reads"]["total"]) for r in rows])
    return [("reads per translation against cache capacity", ["cache", "entries"] + cols, body)]


def _vms_tables(rows: List[Dict[str, Any]]) -> List[Table]:
    caches = list(rows[0]["hit_rate"])
    body = [
        [str(r["vms"]), r["system"], _n(round(r["reads"]["total"], 2))]
        + [_pct(r["hit_rate"][c]) for c in caches]
        for r in sorted(rows, key=lambda r: (r["vms"], list(SYSTEMS).index(r["system"])))
    ]
    return [
        (
            "hit rate (%) against the number of VMs",
            ["VMs", "system", "reads/tr"] + [f"{c} %" for c in caches],
            body,
        )
    ]


def _workloads_tables(rows: List[Dict[str, Any]]) -> List[Table]:
    systems = list(dict.fromkeys(r["system"] for r in rows))
    sizes = list(dict.fromkeys(r["page_size"] for r in rows))
    body = []
    for size in sizes:
        byk = {r["system"]: r for r in rows if r["page_size"] == size}
        for k, p in enumerate(byk[systems[0]]["points"]):
            body.append(
                [size, p["pattern"]]
                + [_n(round(byk[s]["points"][k]["reads"]["total"], 2)) for s in systems]
                + [_pct(byk[s]["points"][k]["hit_rate"]["IOTLB"]) for s in systems]
            )
    heads = ["page", "pattern"] + systems + [f"IOTLB % {s}" for s in systems]
    return [("reads per translation by access pattern and page size", heads, body)]


def _rebind_tables(rows: List[Dict[str, Any]]) -> List[Table]:
    body = []
    caches: List[str] = []
    for r in rows:
        for op in r["ops"]:
            caches = list(op["dropped"])
            after = op["reads_after"]
            before = op["reads_before"]
            body.append(
                [r["system"], op["op"], str(op["commands"])]
                + [str(op["dropped"][c]) for c in caches]
                + [
                    f"{_n(round(before[g], 2)) if g in before else '-'} -> {_n(round(after[g], 2))}"
                    if g in after
                    else "-"
                    for g in ("pasid", "same_vm", "other_vms")
                ]
            )
    heads = (
        ["system", "op", "commands"]
        + [f"{c} dropped" for c in caches]
        + ["reads/tr PASID", "reads/tr same VM", "reads/tr other VMs"]
    )
    return [("bind, rebind and unbind: cost (reads per translation before -> after)", heads, body)]


def _memory_tables(rows: List[Dict[str, Any]]) -> List[Table]:
    comps = list(rows[0]["per_pasid"])
    body = []
    for r in rows:
        for key in ("per_vm", "per_pasid"):
            d = r[key]
            body.append(
                [r["system"], key.replace("_", " ")]
                + [_kib(None if d is None else d[c]) for c in comps]
                + [_kib(None if d is None else sum(d.values()))]
            )
    return [("host memory the model takes (KiB)", ["system", "unit"] + comps + ["total"], body)]


_TABLES = {
    "cold": _cold_tables,
    "caches": _caches_tables,
    "vms": _vms_tables,
    "workloads": _workloads_tables,
    "rebind": _rebind_tables,
    "memory": _memory_tables,
}


def tables_of(data: Dict[str, Any]) -> Dict[str, List[Table]]:
    """{experiment: [(title, headers, rows)]} for every experiment in ``data``."""
    return {exp: _TABLES[exp](rows) for exp, rows in data["experiments"].items() if rows}


def _text_table(title: str, heads: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in heads]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    lines = [title, "  " + "  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def text_tables(data: Dict[str, Any]) -> str:
    """Every table as plain text (the terminal output)."""
    parts = []
    for exp, tabs in tables_of(data).items():
        num = FIGURES[exp][0]
        parts.append(f"== Figure {num}: {FIGURES[exp][2]} ({exp})")
        parts += [_text_table(*t) for t in tabs]
    parts.append(f"faults during the study: {data['faults']} (a correct system has none)")
    return "\n\n".join(parts) + "\n"


def _md_table(title: str, heads: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [
        f"*{title}*",
        "",
        "| " + " | ".join(heads) + " |",
        "|" + "|".join("---" for _ in heads) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(title: str, heads: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    e = html.escape
    out = [f"<table><caption>{e(title)}</caption><tr>"]
    out += [f"<th>{e(h)}</th>" for h in heads] + ["</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "".join(out)


# ---------------------------------------------------------------------------
# findings
# ---------------------------------------------------------------------------
def _by(rows: List[Dict[str, Any]], key: str = "system") -> Dict[Any, Dict[str, Any]]:
    return {r[key]: r for r in rows}


def claims(data: Dict[str, Any]) -> List[str]:
    """The findings the numbers support, each citing its figure (Markdown)."""
    ex = data["experiments"]
    out: List[str] = []
    if ex.get("cold"):
        cold = _by(ex["cold"])
        out += _cold_claims(cold)
    if ex.get("caches"):
        out += _caches_claims(ex["caches"])
    if ex.get("vms"):
        out += _vms_claims(ex["vms"], data["config"])
    if ex.get("workloads"):
        out += _workloads_claims(ex["workloads"])
    if ex.get("rebind"):
        out += _rebind_claims(_by(ex["rebind"]))
    if ex.get("memory"):
        out += _memory_claims(_by(ex["memory"]))
    return out


def _tot(r: Dict[str, Any], state: str, key: str = "total") -> float:
    v: float = r["states"][state][key]
    return v


def _cold_claims(c: Dict[str, Any]) -> List[str]:
    out = []
    if "classic" in c and "gipc-2025" in c:
        cl, g5 = c["classic"], c["gipc-2025"]
        saved = _tot(cl, "cold", "G_PTE_pdt") - _tot(g5, "cold", "G_PTE_pdt")
        out.append(
            f"**The SPA-addressed PDT saves {_n(saved)} G-stage reads on a cold translation**: "
            f"with the PDT in guest memory (classic) each of the PDT walk's "
            f"{_n(_tot(cl, 'cold', 'PDTE') + _tot(cl, 'cold', 'PC'))} reads (PDT entries and "
            f"the PC) needs its GPA translated first, {_n(_tot(cl, 'cold', 'G_PTE_pdt'))} "
            f"G-stage PTE reads in all; GIPC 2025 reads the same PDT at SPAs: "
            f"{_n(_tot(cl, 'cold'))} reads become {_n(_tot(g5, 'cold'))} "
            f"({_n(_tot(cl, 'cold', 'bytes'))} bytes become {_n(_tot(g5, 'cold', 'bytes'))}; "
            f"its PC is 32 bytes instead of 16) (Figure 1)."
        )
    if "classic" in c and "gipc-2024" in c:
        cl, g4 = c["classic"], c["gipc-2024"]
        out.append(
            f"**GIPC 2024 needs no G-stage translation of any table address**: a cold "
            f"translation takes {_n(_tot(g4, 'cold'))} reads against classic's "
            f"{_n(_tot(cl, 'cold'))} ({_n(_tot(g4, 'cold', 'bytes'))} bytes against "
            f"{_n(_tot(cl, 'cold', 'bytes'))}; its 64-byte PC, used with `MSI_FLAT`, is four "
            f"times the base PC) (Figure 1)."
        )
        out.append(
            f"**With the DC and PC cached and no G-stage walk cache**, an IOTLB miss costs "
            f"{_n(_tot(cl, 'dirs'))} reads in classic assignment "
            f"({_n(_tot(cl, 'dirs', 'S_PTE'))} first-stage PTEs, "
            f"{_n(_tot(cl, 'dirs', 'G_PTE_s1'))} G-stage reads translating their addresses, "
            f"{_n(_tot(cl, 'dirs', 'G_PTE_final'))} for the final GPA) and "
            f"{_n(_tot(g4, 'dirs'))} under GIPC 2024, whose first-stage tables sit at SPAs "
            f"(Figure 1)."
        )
        if _tot(cl, "dirs+gwalk") == _tot(g4, "dirs+gwalk"):
            out.append(
                f"**A warm G-stage walk cache erases that difference**: with it, every "
                f"configuration pays {_n(_tot(g4, 'dirs+gwalk'))} reads for an IOTLB miss. "
                f"GIPC 2024's saving is a saving of G-stage walk cache capacity and of cold "
                f"misses, not of steady-state walks (Figures 1 and 2)."
            )
    if "msi" in next(iter(c.values()))["states"]:
        parts = ", ".join(f"{k} {_n(_tot(r, 'msi'))}" for k, r in c.items())
        out.append(
            f"**An MSI write with the DC and PC cached** costs: {parts} reads; the model never "
            f"caches MSI translations in the IOTLB, so each MSI walks the first stage again "
            f"(GIPC 2025 has no MSI page table: see the systems above) (Figure 1)."
        )
    return out


def _sweep(
    rows: List[Dict[str, Any]], cache: str, policy: str
) -> Dict[str, List[Tuple[int, float]]]:
    out = {}
    for r in rows:
        if r["policy"] == policy:
            out[r["system"]] = [
                (p["capacity"], p["reads"]["total"]) for p in r["points"] if p["cache"] == cache
            ]
    return out


def _caches_claims(rows: List[Dict[str, Any]]) -> List[str]:
    out = []
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    pol = policies[0]
    caches = list(dict.fromkeys(p["cache"] for p in rows[0]["points"]))
    if "GWALK" in caches:
        sw = _sweep(rows, "GWALK", pol)
        spans = {k: (v[0][1], v[-1][1]) for k, v in sw.items()}
        parts = "; ".join(
            f"{k} {_n(round(a, 2))} -> {_n(round(b, 2))}" for k, (a, b) in spans.items()
        )
        out.append(
            f"**G-stage walk cache capacity** from {sw[next(iter(sw))][0][0]} to "
            f"{sw[next(iter(sw))][-1][0]} entries ({pol.upper()}), reads per translation: "
            f"{parts}. Configurations that translate table addresses depend on it; GIPC 2024 "
            f"does not look it up at all (Figure 2)."
        )
    if "DDT" in caches:
        sw = _sweep(rows, "DDT", pol)
        nonzero = [i for i, (cap, _) in enumerate(sw.get("classic", [])) if cap]
        if nonzero:
            k = nonzero[0]  # the smallest non-zero capacity
            cap = sw["classic"][k][0]
            others = ", ".join(
                f"{name} {_n(round(v[k][1], 2))}" for name, v in sw.items() if name != "classic"
            )
            out.append(
                f"**DDT cache**: classic SR-IOV assignment has one DC per VM; with a {cap}-entry "
                f"DDT cache it pays {_n(round(sw['classic'][k][1], 2))} reads per translation "
                f"against {others} where one device serves every VM, and "
                f"{_n(round(sw['classic'][-1][1], 2))} once the cache holds every DC (Figure 2)."
            )
    if len(policies) > 1 and "IOTLB" in caches:
        a = _sweep(rows, "IOTLB", policies[0])
        b = _sweep(rows, "IOTLB", policies[1])
        diffs = [abs(x[1] - y[1]) for k in a for x, y in zip(a[k], b[k], strict=True)]
        out.append(
            f"**Replacement policy**: {policies[0].upper()} and {policies[1].upper()} differ by "
            f"at most {_n(round(max(diffs), 2))} reads per translation across the IOTLB sweep "
            f"(Figure 2)."
        )
    return out


def _vms_claims(rows: List[Dict[str, Any]], cfg: Dict[str, Any]) -> List[str]:
    out = []
    by: Dict[str, Dict[int, Dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["system"], {})[r["vms"]] = r
    lo, hi = min(cfg["vm_sweep"]), max(cfg["vm_sweep"])
    if "classic" in by and hi in by["classic"]:
        cl = by["classic"]
        g = {k: v for k, v in by.items() if k.startswith("gipc")}
        gtxt = ", ".join(f"{k} {_pct(v[hi]['hit_rate']['DDT'])}%" for k, v in g.items() if hi in v)
        out.append(
            f"**Many VMs on one device keep the DDT cache hit rate**: spreading "
            f"{cfg['pasids']} PASIDs over {hi} VMs, classic SR-IOV needs {hi} DCs and its DDT "
            f"cache hit rate goes from {_pct(cl[lo]['hit_rate']['DDT'])}% to "
            f"{_pct(cl[hi]['hit_rate']['DDT'])}%; with GIPC one DC serves every VM"
            + (f" ({gtxt})" if gtxt else "")
            + " (Figure 3)."
        )
    parts = []
    for k, v in by.items():
        if hi in v and lo in v:
            parts.append(
                f"{k} {_pct(v[lo]['hit_rate']['IOTLB'])}% -> {_pct(v[hi]['hit_rate']['IOTLB'])}%"
            )
    if parts:
        out.append(
            f"**The IOTLB behaves the same when many VMs share one device**: its entries are "
            f"tagged with GSCID and PSCID whoever supplies them, so the IOTLB hit rate from "
            f"{lo} to {hi} VMs is: {'; '.join(parts)} (Figure 3)."
        )
    gw = []
    for k, v in by.items():
        if hi in v and lo in v:
            gw.append(
                f"{k} {_pct(v[lo]['hit_rate']['GWALK'])}% -> {_pct(v[hi]['hit_rate']['GWALK'])}%"
                f" ({v[hi]['lookups']['GWALK']} lookups at {hi} VMs)"
            )
    if gw:
        out.append(
            "**G-stage walk cache** hit rate from "
            f"{lo} to {hi} VMs: {'; '.join(gw)}. It holds one entry per table page (tag "
            f"GSCID + GPA page): first-stage tables are per PASID whatever the number of VMs, "
            f"but classic SR-IOV adds one PDT in guest memory per VM; GIPC 2025's PDT is at "
            f"SPAs and GIPC 2024 never looks the cache up (Figure 3)."
        )
    return out


def _workloads_claims(rows: List[Dict[str, Any]]) -> List[str]:
    best: Dict[str, int] = {}
    total = 0
    lines = []
    sizes = list(dict.fromkeys(r["page_size"] for r in rows))
    for size in sizes:
        byk = {r["system"]: r for r in rows if r["page_size"] == size}
        first = next(iter(byk.values()))
        for k in range(len(first["points"])):
            vals = {s: r["points"][k]["reads"]["total"] for s, r in byk.items()}
            low = min(vals.values())
            for s, v in vals.items():
                if v == low:
                    best[s] = best.get(s, 0) + 1
            total += 1
        if "classic" in byk and "gipc-2024" in byk:
            c = [p["reads"]["total"] for p in byk["classic"]["points"]]
            g = [p["reads"]["total"] for p in byk["gipc-2024"]["points"]]
            lines.append(
                f"{size}: classic {_n(round(min(c), 2))}..{_n(round(max(c), 2))}, "
                f"GIPC 2024 {_n(round(min(g), 2))}..{_n(round(max(g), 2))}"
            )
    winners = ", ".join(f"{s} in {n}" for s, n in sorted(best.items(), key=lambda x: -x[1]))
    rates: Dict[str, List[float]] = {}
    for r in rows:
        if r["page_size"] == sizes[0]:
            for p in r["points"]:
                rates.setdefault(p["pattern"], []).append(p["hit_rate"]["IOTLB"])
    out = [
        f"**Across {total} workload points** (patterns x page sizes) the fewest reads per "
        f"translation were: {winners} (ties count for each) (Figure 4)."
    ]
    if lines:
        out.append(
            "**Larger pages shorten every walk**; reads per translation across patterns: "
            f"{'; '.join(lines)} (Figure 4)."
        )
    spread = "; ".join(f"{p} {_pct(min(v))}..{_pct(max(v))}%" for p, v in rates.items())
    thrash = [p for p, v in rates.items() if max(v) < 0.05]
    note = (
        f"; the {' and '.join(thrash)} patterns cycle over more pages than the IOTLB holds, "
        f"which defeats LRU whatever the assignment model"
        if thrash
        else ""
    )
    out.append(
        f"**IOTLB hit rate by pattern** ({sizes[0]} pages, every system): {spread}{note} "
        f"(Figure 4)."
    )
    return out


def _rebind_claims(r: Dict[str, Any]) -> List[str]:
    out = []
    for kind in ("gipc-2024", "gipc-2025"):
        ops = {o["op"]: o for o in r.get(kind, {}).get("ops", [])}
        if "rebind" in ops:
            o = ops["rebind"]
            out.append(
                f"**Rebinding a PASID ({kind})** takes {o['commands']} commands "
                f"({', '.join(o['command_names'])}) and drops {o['dropped']['IOTLB']} IOTLB "
                f"entries, {o['dropped']['PDT']} cached PC(s) and {o['dropped']['GWALK']} G-stage "
                f"walk cache entries. Decision #9's `IOTINVAL.GVMA` for the old VM also drops "
                f"the old VM's other PASIDs' translations: their first translations after the "
                f"rebind cost {_n(round(o['reads_after'].get('same_vm', 0), 2))} reads each "
                f"(before: {_n(round(o['reads_before'].get('same_vm', 0), 2))}), while other "
                f"VMs' cost {_n(round(o['reads_after'].get('other_vms', 0), 2))} (Figure 5)."
            )
    if "classic" in r:
        ops = {o["op"]: o for o in r["classic"]["ops"]}
        if "rebind" in ops:
            o = ops["rebind"]
            out.append(
                f"**Classic assignment cannot move one PASID**: moving the work means "
                f"reassigning the whole function, {o['commands']} commands and "
                f"{o['dropped']['IOTLB']} IOTLB entries dropped; its PASIDs' first translations "
                f"afterwards cost {_n(round(o['reads_after'].get('pasid', 0), 2))} reads each "
                f"(Figure 5)."
            )
    bind = [
        f"{k} {next(o['commands'] for o in v['ops'] if o['op'] == 'bind')}" for k, v in r.items()
    ]
    out.append(
        f"**Binding** a PASID takes these commands: {', '.join(bind)}: a classic PC goes from "
        f"invalid to valid and needs none; the GIPC bind sequence (docs/gipc.md) adds "
        f"`IODIR.INVAL_PDT` and a fence (Figure 5)."
    )
    return out


def _memory_claims(r: Dict[str, Any]) -> List[str]:
    out = []
    for kind, m in r.items():
        if m["per_vm"] is None:
            continue
        vm, pasid = m["per_vm"], m["per_pasid"]
        grows = sum(vm[c] + pasid[c] for c in vm if c != "model")
        out.append(
            f"**{kind}** takes {_kib(sum(vm.values()))} KiB of host memory per VM and "
            f"{_kib(sum(pasid.values()))} KiB per PASID (simulated memory holding the tables: "
            f"{_kib(vm['simulated memory'])} and {_kib(pasid['simulated memory'])} KiB; the "
            f"model's caches, {_kib(vm['model'])} and {_kib(pasid['model'])} KiB here, stop "
            f"growing at their capacities): 65,536 VMs with one PASID each need about "
            f"{65536 * grows / 2**30:.1f} GiB besides the caches (Figure 6)."
        )
    return out


# ---------------------------------------------------------------------------
# documents
# ---------------------------------------------------------------------------
_COMMAND = "riscv-iommu study --jobs 2 --out docs/study --markdown docs/study-gipc.md"

_INTRO = """\
# What GIPC costs and saves: a reproducible study

This page is generated by `riscv-iommu study` from the model's own counts:
do not edit it by hand (the text lives in `src/riscv_iommu/study/report.py`).
Every number below is exact for the model: it counts every structure read the
translation process makes, through the model's event stream
(`StructRead` events) and cache statistics (`iommu.stats`). Nothing is timed.

Regenerate everything (this page, the figures in `docs/study/`, `study.json`
and the self-contained `report.html`) with one command; the default sweep
runs in a few minutes on two cores:

    {command}

The plots need the `[plot]` extra (`pip install "riscv-iommu[plot]"`);
without it the command writes the tables only. From Python:
`riscv_iommu.study.run(riscv_iommu.study.StudyConfig(...))`.

## The systems

Every system is one IOMMU with every capability (`MSI_FLAT`, so 64-byte
DCs), a 3-level DDT, PD20 process directories, Sv39 first-stage and Sv39x4
G-stage tables, all built by the host toolkit (`riscv_iommu.host`:
`Hypervisor`, `Driver`) through registers, memory and the command queue.

| system | what it builds |
|---|---|
{systems}

GIPC 2024 uses its 64-byte PC here (the IOMMU has `MSI_FLAT`), with the
PASID's VM's MSI page table in the PC. A GIPC 2025 device has `DC.iohgatp`
Bare, and the spec says "When `DC.iohgatp.MODE` is `Bare`, `DC.msiptp.MODE`
must be set to `Off`": the 2025 revision keeps MSI translation in the DC,
so a GIPC 2025 device has no MSI page table. The study maps each VM's
interrupt file in its G-stage instead, and MSI writes are ordinary writes.

## The workload

{pasids} PASIDs of one device, PASID `g` in VM `g mod N`, each mapping
{pages} pages of {page} (first-stage and G-stage leaves of that size) onto
its VM's RAM, and an MSI doorbell page. Requests follow the `{pattern}`
pattern unless a figure varies it; {msi:.0%} of them are MSI writes. Each
point warms the caches with {warmup} requests, then measures
{translations} (seed {seed}; the same requests for every system). Cache
capacities, unless a figure sweeps them: {defaults}; replacement
{policy}.

| pattern | requests |
|---|---|
{patterns}

A "read" is one structure read of the translation process (a `StructRead`
event): a DDT entry, a DC, a PDT entry, a PC, a first-stage PTE, a G-stage PTE
or an MSI PTE; a DC or a PC is one read of 32 or 64 bytes (16 for a base PC),
counted in the bytes columns. G-stage PTE reads are split by what they translate: a PDT address
(base spec: the PDT is in guest memory), a first-stage PTE address, or the
request's own GPA (final).
"""

_USAGE = """\
## Running other studies

`riscv-iommu study` takes the settings of `riscv_iommu.study.StudyConfig` as
options; each is checked (a bad value names the option and exits 2):

| option | meaning |
|---|---|
| `--preset NAME` | the starting configuration: `default`, or `quick` (seconds) |
| `--seed N` | the random seed: the same seed gives the same JSON |
| `--systems`, `--experiments` | which of each to run (comma-separated) |
| `--vms N` | VMs (1..65,536) |
| `--pasids N` | PASIDs of the device (1..10^6) |
| `--pages N` | pages mapped per PASID |
| `--page-size`, `--pattern`, `--msi-fraction` | the workload |
| `--translations N`, `--warmup N` | requests measured, and sent before measuring |
| `--vm-sweep`, `--cache-sweep`, `--caches` | the sweeps of Figures 2 and 3 |
| `--policies`, `--patterns`, `--page-sizes` | ... of Figures 2 and 4 |
| `--memory-points` | the two sizes of Figure 6 |
| `--jobs N` | worker processes (the result does not depend on it) |
| `--out DIR`, `--markdown FILE` | write the files, the document |
| `--no-plots`, `--json`, `--from-json FILE` | tables only; JSON; report an old run |

Only the PASIDs that the requests touch are bound, so a million PASIDs cost
what the touched ones cost; 65,536 VMs need each VM's tables (Figure 6 says
how much memory that takes). From Python:

```python
from riscv_iommu import study
result = study.run(study.StudyConfig(vms=64, pasids=4096, pattern="uniform"), jobs=2)
print(result.tables())
study.write_report(result, "out", markdown="out/study.md")  # study.json, PNGs, report.html
```

`study.run(config, progress=None, jobs=1) -> StudyResult` (`.data`: plain
JSON values; `.to_json()`, `.tables()`, `StudyResult.from_json(text)`),
`study.write_report(result, outdir, plots=None, markdown=None)` (`plots`:
None draws them when matplotlib is installed, True requires it, False never).
"""

_LIMITS = """\
## Limits

- The model counts reads, not time: a read that a real IOMMU serves from a
  cache it has and this model does not (a first-stage non-leaf PTE cache, a
  cache of PDT entries) is counted as a read here.
- The model never caches MSI translations in the IOTLB.
- The cache capacities and the replacement policy apply per cache; real
  IOMMUs share or partition storage in ways the spec leaves open.
- Memory figures are the Python model's own footprint on the host (the
  simulated memory's pages, the host toolkit's objects, the model's
  caches), measured by walking each one's object graph (`sys.getsizeof` of
  every object reachable, once: exact and repeatable, where `tracemalloc`
  totals vary by tens of bytes between runs); they tell how large a system
  this model can simulate, not what hardware stores.
"""


def markdown(data: Dict[str, Any], figdir: Optional[str]) -> str:
    """The results document; ``figdir`` is where the PNGs are, relative to the
    document (None: no figures)."""
    cfg = data["config"]
    defaults = ", ".join(f"{k} {v}" for k, v in cfg["cache_defaults"].items())
    text = _INTRO.format(
        command=_COMMAND,
        systems="\n".join(f"| `{k}` | {v} |" for k, v in SYSTEMS.items()),
        patterns="\n".join(f"| `{k}` | {v} |" for k, v in _patterns().items()),
        pasids=cfg["pasids"],
        pages=cfg["pages"],
        page=_page_name(cfg["page_size"]),
        pattern=cfg["pattern"],
        msi=cfg["msi_fraction"],
        warmup=cfg["warmup"],
        translations=cfg["translations"],
        seed=cfg["seed"],
        defaults=defaults,
        policy=cfg["policy"].upper(),
    )
    parts = [text, "## Findings", ""]
    parts += [f"{k}. {c}" for k, c in enumerate(claims(data), 1)]
    parts.append("")
    for exp, tabs in tables_of(data).items():
        num, name, caption = FIGURES[exp]
        parts.append(f"## Figure {num}: {caption}")
        parts.append("")
        parts.append(EXPERIMENTS[exp][0].upper() + EXPERIMENTS[exp][1:] + ".")
        parts.append("")
        if figdir is not None:
            parts.append(f"![Figure {num}]({figdir}/{name})")
            parts.append("")
        for t in tabs:
            parts.append(_md_table(*t))
            parts.append("")
    parts.append(_USAGE)
    parts.append(_LIMITS)
    return "\n".join(parts)


def _patterns() -> Dict[str, str]:
    from .config import PATTERNS

    return PATTERNS


def _page_name(key: str) -> str:
    size = PAGE_SIZES[key]
    return (
        f"{size >> 30} GiB"
        if size >= 1 << 30
        else f"{size >> 20} MiB"
        if size >= 1 << 20
        else f"{size >> 10} KiB"
    )


def html_page(data: Dict[str, Any], images: Dict[str, str]) -> str:
    """One self-contained HTML page: findings, figures (embedded PNGs) and tables."""
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>riscv-iommu study: what GIPC costs and saves</title>",
        "<style>body{font-family:sans-serif;max-width:1300px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "caption{font-weight:bold;text-align:left}img{max-width:100%}</style>",
        "</head><body><h1>What GIPC costs and saves</h1>",
        f"<p>Generated by <code>riscv-iommu study</code>; configuration: "
        f"<code>{e(json.dumps(data['config'], sort_keys=True))}</code></p>",
        "<h2>Findings</h2><ol>",
    ]
    parts += [f"<li>{_md_inline(c)}</li>" for c in claims(data)]
    parts.append("</ol>")
    if not images:
        parts.append(
            "<p><em>No figures: install the [plot] extra (matplotlib) to draw them.</em></p>"
        )
    for exp, tabs in tables_of(data).items():
        num, _, caption = FIGURES[exp]
        parts.append(f"<h2>Figure {num}: {e(caption)}</h2>")
        if exp in images:
            with open(images[exp], "rb") as f:
                b64 = base64.b64encode(f.read()).decode()
            parts.append(f"<img alt='Figure {num}' src='data:image/png;base64,{b64}'>")
        parts += [_html_table(*t) for t in tabs]
    parts.append(f"<p>Faults during the study: {data['faults']}</p></body></html>")
    return "\n".join(parts) + "\n"


def _md_inline(text: str) -> str:
    """The Markdown of a finding as HTML (**bold** and `code` only)."""
    out = html.escape(text)
    while "**" in out:
        out = out.replace("**", "<b>", 1).replace("**", "</b>", 1)
    while "`" in out:
        out = out.replace("`", "<code>", 1).replace("`", "</code>", 1)
    return out


def write(
    data: Dict[str, Any], outdir: str, plots: Optional[bool], md_path: Optional[str]
) -> Dict[str, str]:
    """Write study.json, the figures, report.html (and the Markdown document)."""
    files: Dict[str, str] = {}
    path = os.path.join(outdir, "study.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
    files["json"] = path
    images: Dict[str, str] = {}
    if plots is not False:
        try:
            from . import plots as _plots
        except ImportError:
            if plots:
                raise
        else:
            images = _plots.draw(data, outdir, FIGURES)
            files.update({f"figure {FIGURES[k][0]}": p for k, p in images.items()})
    path = os.path.join(outdir, "report.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(html_page(data, images))
    files["html"] = path
    if md_path is not None:
        figdir = os.path.relpath(outdir, os.path.dirname(os.path.abspath(md_path)) or ".")
        with open(md_path, "w", encoding="utf-8") as f:
            f.write(markdown(data, figdir.replace(os.sep, "/") if images else None))
        files["markdown"] = md_path
    return files
