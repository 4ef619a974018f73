"""The study's figures, drawn with matplotlib (the optional ``[plot]`` extra).

This module imports matplotlib at the top: only :func:`riscv_iommu.study.report.write`
imports it, and only when plots are wanted.  Each ``fig_*`` function takes the
result's data and a path and writes one small PNG.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Tuple

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt  # noqa: E402

from .probe import STRUCTURES  # noqa: E402

__all__ = ["DRAW", "draw"]

_DPI = 72
_COLORS = {
    "classic": "#4e79a7",
    "classic-1vm": "#9c9c9c",
    "gipc-2024": "#e15759",
    "gipc-2025": "#f28e2b",
}
_STRUCT_COLORS = {
    "DDTE": "#bab0ac",
    "DC": "#79706e",
    "PDTE": "#d4a6c8",
    "PC": "#b07aa1",
    "S_PTE": "#59a14f",
    "G_PTE_pdt": "#f1ce63",
    "G_PTE_s1": "#edc948",
    "G_PTE_final": "#76b7b2",
    "G_PTE_other": "#ff9da7",
    "MSI_PTE": "#9c755f",
    "MRIF": "#000000",
}
_LABELS = {
    "G_PTE_pdt": "G-stage PTE (PDT address)",
    "G_PTE_s1": "G-stage PTE (first-stage table address)",
    "G_PTE_final": "G-stage PTE (request GPA)",
    "G_PTE_other": "G-stage PTE (other table address)",
    "S_PTE": "first-stage PTE",
}


def _save(fig: Any, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)


def fig_cold(data: Dict[str, Any], path: str) -> None:
    """Figure 1: stacked reads of one translation per structure, state by state."""
    rows = data["experiments"]["cold"]
    states = list(rows[0]["states"])
    systems = [r["system"] for r in rows]
    fig, axes = plt.subplots(1, len(states), figsize=(11, 3.6), sharey=True)
    used = [s for s in STRUCTURES if any(r["states"][st][s] for r in rows for st in states)]
    for ax, st in zip(axes, states, strict=True):
        bottom = [0.0] * len(systems)
        for s in used:
            vals = [r["states"][st][s] for r in rows]
            ax.bar(systems, vals, bottom=bottom, color=_STRUCT_COLORS[s], label=_LABELS.get(s, s))
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        for x, b in enumerate(bottom):
            ax.text(x, b + 0.5, f"{b:g}", ha="center", fontsize=8)
        ax.set_title(st, fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    axes[0].set_ylabel("memory reads")
    axes[-1].legend(fontsize=6, loc="upper right")
    fig.suptitle("Figure 1: reads of one translation, by structure and cache state", fontsize=10)
    _save(fig, path)


def _by_system(rows: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    out: Dict[str, List[Dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["system"], []).append(r)
    return out


def _x(cap: int) -> float:
    return cap if cap else 0.5  # capacity 0 plotted at the left of 1 on a log axis


def fig_caches(data: Dict[str, Any], path: str) -> None:
    """Figure 2: reads per translation against each cache's capacity."""
    rows = data["experiments"]["caches"]
    caches = list(dict.fromkeys(p["cache"] for p in rows[0]["points"]))
    fig, axes = plt.subplots(1, len(caches), figsize=(12, 3.4), sharey=True, squeeze=False)
    for ax, cache in zip(axes[0], caches, strict=True):
        for r in rows:
            pts = [p for p in r["points"] if p["cache"] == cache]
            ax.plot(
                [_x(p["capacity"]) for p in pts],
                [p["reads"]["total"] for p in pts],
                color=_COLORS[r["system"]],
                linestyle="-" if r["policy"] == "lru" else "--",
                marker="o",
                markersize=3,
                label=f"{r['system']} {r['policy'].upper()}",
            )
        ax.set_xscale("log", base=2)
        ax.set_title(f"{cache} capacity (entries)", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("reads per translation")
    axes[0][-1].legend(fontsize=6)
    fig.suptitle("Figure 2: reads per translation against cache capacity (0 at left)", fontsize=10)
    _save(fig, path)


def fig_vms(data: Dict[str, Any], path: str) -> None:
    """Figure 3: hit rate of each cache (and reads) against the number of VMs."""
    rows = data["experiments"]["vms"]
    sweep = data["config"]["vm_sweep"]
    panels = ["IOTLB", "DDT", "PDT", "GWALK", "MSI", "reads"]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.2))
    for ax, panel in zip(axes, panels, strict=True):
        for kind, rs in _by_system(rows).items():
            if len(rs) == 1:  # classic-1vm: one VM whatever the sweep; a flat reference
                rs = [dict(rs[0], vms=n) for n in sweep]
            ys = [
                r["reads"]["total"] if panel == "reads" else 100 * r["hit_rate"][panel] for r in rs
            ]
            ax.plot(
                [r["vms"] for r in rs],
                ys,
                marker="o",
                markersize=3,
                color=_COLORS[kind],
                label=kind,
            )
        ax.set_xscale("log", base=2)
        if panel != "reads":
            ax.set_ylim(-3, 103)
        ax.set_xlabel("VMs", fontsize=8)
        ax.set_title(
            "reads per translation" if panel == "reads" else f"{panel} hit rate (%)", fontsize=9
        )
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6)
    fig.suptitle("Figure 3: the same PASIDs spread over more VMs", fontsize=10)
    _save(fig, path)


def fig_workloads(data: Dict[str, Any], path: str) -> None:
    """Figure 4: reads per translation per access pattern, one panel per page size."""
    rows = data["experiments"]["workloads"]
    sizes = list(dict.fromkeys(r["page_size"] for r in rows))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    fig, axes = plt.subplots(1, len(sizes), figsize=(11, 3.3), sharey=True, squeeze=False)
    for ax, size in zip(axes[0], sizes, strict=True):
        for k, kind in enumerate(systems):
            r = next(r for r in rows if r["system"] == kind and r["page_size"] == size)
            pats = [p["pattern"] for p in r["points"]]
            xs = [i + (k - (len(systems) - 1) / 2) * 0.2 for i in range(len(pats))]
            ax.bar(
                xs,
                [p["reads"]["total"] for p in r["points"]],
                width=0.2,
                color=_COLORS[kind],
                label=kind,
            )
            ax.set_xticks(range(len(pats)), pats, fontsize=7)
        ax.set_title(f"{size} pages", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("reads per translation")
    axes[0][-1].legend(fontsize=6)
    fig.suptitle("Figure 4: access patterns and page sizes", fontsize=10)
    _save(fig, path)


def fig_rebind(data: Dict[str, Any], path: str) -> None:
    """Figure 5: commands, entries dropped and reads after bind / rebind / unbind."""
    rows = data["experiments"]["rebind"]
    labels: List[str] = []
    commands: List[int] = []
    dropped: Dict[str, List[int]] = {}
    after: Dict[str, List[float]] = {"pasid": [], "same_vm": [], "other_vms": []}
    colors: List[str] = []
    for r in rows:
        for op in r["ops"]:
            labels.append(f"{r['system']}\n{op['op']}")
            colors.append(_COLORS[r["system"]])
            commands.append(op["commands"])
            for c, n in op["dropped"].items():
                dropped.setdefault(c, []).append(n)
            for g in after:
                after[g].append(op["reads_after"].get(g, 0.0))
    xs = list(range(len(labels)))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].bar(xs, commands, color=colors)
    axes[0].set_title("commands (fence included)", fontsize=9)
    bottom = [0] * len(xs)
    for c, ns in dropped.items():
        axes[1].bar(xs, ns, bottom=bottom, label=c)
        bottom = [b + n for b, n in zip(bottom, ns, strict=True)]
    axes[1].set_title("cache entries dropped", fontsize=9)
    axes[1].legend(fontsize=6)
    for k, (g, ys) in enumerate(after.items()):
        axes[2].bar([x + (k - 1) * 0.27 for x in xs], ys, width=0.27, label=g.replace("_", " "))
    axes[2].set_title("reads per translation just after", fontsize=9)
    axes[2].legend(fontsize=6)
    for ax in axes:
        ax.set_xticks(xs, labels, fontsize=6, rotation=90)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("Figure 5: the cost of binding, rebinding and unbinding a PASID", fontsize=10)
    _save(fig, path)


def fig_memory(data: Dict[str, Any], path: str) -> None:
    """Figure 6: the model's memory per VM and per PASID, by component."""
    rows = data["experiments"]["memory"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key in zip(axes, ("per_vm", "per_pasid"), strict=True):
        rs = [r for r in rows if r[key] is not None]
        comps = [c for c in rs[0][key] if any(r[key][c] > 0 for r in rs)] if rs else []
        bottom = [0.0] * len(rs)
        for c in comps:
            vals = [max(r[key][c], 0) / 1024 for r in rs]
            ax.bar([r["system"] for r in rs], vals, bottom=bottom, label=c)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_title(("per VM" if key == "per_vm" else "per PASID") + " (KiB)", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[1].legend(fontsize=6)
    fig.suptitle("Figure 6: host memory the model takes, by component", fontsize=10)
    _save(fig, path)


#: experiment -> drawing function
DRAW: Dict[str, Callable[[Dict[str, Any], str], None]] = {
    "cold": fig_cold,
    "caches": fig_caches,
    "vms": fig_vms,
    "workloads": fig_workloads,
    "rebind": fig_rebind,
    "memory": fig_memory,
}


def draw(
    data: Dict[str, Any], outdir: str, figures: Dict[str, Tuple[int, str, str]]
) -> Dict[str, str]:
    """Draw the figure of every experiment in ``data`` into ``outdir`` (file names from
    ``figures``: experiment -> (number, file name, caption)); returns {experiment: path}."""
    out: Dict[str, str] = {}
    for exp, rows in data["experiments"].items():
        if rows:
            path = os.path.join(outdir, figures[exp][1])
            DRAW[exp](data, path)
            out[exp] = path
    return out
