"""Coverage reports: a text table, Markdown, and a self-contained HTML page.

The HTML page embeds a coverage-closure plot (covered bins against runs,
i.e. against seeds for a campaign) as a base64 PNG when the optional
``plot`` extra (matplotlib) is installed; without it the page has the
tables only.  Nothing here imports matplotlib at module level.
"""

from __future__ import annotations

import base64
import datetime
import fnmatch
import html
import io
from typing import List, Mapping, Optional

from .data import Coverage
from .model import BINS, MODEL, MODEL_ID, Bin

__all__ = ["text_report", "markdown_report", "html_report", "closure_png", "note_for"]


def note_for(name: str, notes: Mapping[str, str]) -> str:
    """The note of a bin: its exact name, else the longest matching glob pattern."""
    if name in notes:
        return notes[name]
    best = ""
    text = ""
    for pattern, note in notes.items():
        if fnmatch.fnmatchcase(name, pattern) and len(pattern) > len(best):
            best, text = pattern, note
    return text


def _pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:.1f}%" if total else "-"


# --------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------
def text_report(cov: Coverage, missing: bool = False) -> str:
    """A table of covered bins per group (and the bins never hit, with ``missing``)."""
    rows = [("group", "covered", "bins", "%")]
    for g in MODEL:
        n = len(cov.covered(g.name))
        rows.append((g.name, str(n), str(len(g.bins)), _pct(n, len(g.bins))))
    n = len(cov.covered())
    rows.append(("total", str(n), str(len(BINS)), _pct(n, len(BINS))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"coverage of {len(cov.runs)} run(s), model {MODEL_ID}"]
    for k, r in enumerate(rows):
        if k == len(rows) - 1:
            lines.append("  ".join("-" * w for w in widths))
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    other = cov.outside()
    if other:
        lines.append(f"{len(other)} hit bin(s) not in this model: {', '.join(other)}")
    if missing:
        lines.append("")
        lines.append("bins never hit:")
        for b in cov.missing():
            lines.append(f"  {b.name:44s} {b.spec}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------
def _md(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_report(
    cov: Coverage,
    notes: Optional[Mapping[str, str]] = None,
    title: str = "Functional coverage",
    intro: str = "",
    level: int = 1,
) -> str:
    """A Markdown report: the groups with what decides them, then every bin never hit
    with its note (the reason it cannot be reached, or what would reach it).
    ``level`` is the heading level of the title (to embed the report in a page)."""
    notes = notes or {}
    n = len(cov.covered())
    h = "#" * level
    out: List[str] = [f"{h} {title}", ""]
    if intro:
        out += [intro.strip(), ""]
    out += [
        f"**{n} of {len(BINS)} bins covered ({_pct(n, len(BINS))})** by {len(cov.runs)} runs "
        f"(coverage model `{MODEL_ID}`).",
        "",
        "| Group | Covered | Bins | % | Spec | Decided by (event fields) |",
        "|---|---:|---:|---:|---|---|",
    ]
    for g in MODEL:
        c = len(cov.covered(g.name))
        out.append(
            f"| {g.title} (`{g.name}`) | {c} | {len(g.bins)} | {_pct(c, len(g.bins))} | "
            f"{_md(g.spec)} | {_md(g.decided_by)} |"
        )
    out += ["", f"{h}# Bins never hit", ""]
    if not any(cov.missing(g.name) for g in MODEL):
        out += ["None: every bin of the model is hit.", ""]
    for g in MODEL:
        miss = cov.missing(g.name)
        if not miss:
            continue
        out += [f"{h}## {g.title} (`{g.name}`): {len(miss)} of {len(g.bins)}", ""]
        out += ["| Bin | Spec | Why it is not hit / what would hit it |", "|---|---|---|"]
        for b in miss:
            note = note_for(b.name, notes) or "(no note yet)"
            out.append(f"| `{b.name}` | {_md(b.spec)} | {_md(note)} |")
        out.append("")
    other = cov.outside()
    if other:
        out += [f"{h}# Hits outside the model", ""]
        out += [f"- `{k}`: {v}" for k, v in other.items()]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------
def closure_png(cov: Coverage, title: str = "Coverage closure") -> Optional[bytes]:
    """The closure plot as PNG bytes, or None without matplotlib (the ``plot`` extra)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    points = cov.closure()
    total = len(BINS)
    numeric = all(isinstance(lab, int) for lab, _ in points)
    xs = [lab if numeric else i + 1 for i, (lab, _) in enumerate(points)]
    ys = [100.0 * c / total for _, c in points]
    fig = Figure(figsize=(8, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if xs:
        ax.step(xs, ys, where="post", color="#1f6feb")
        ax.fill_between(xs, ys, step="post", alpha=0.15, color="#1f6feb")
    ax.set_ylim(0, 100)
    ax.set_xlabel("seed" if numeric and xs else "runs")
    ax.set_ylabel("bins covered (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#1f2328;max-width:1100px}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.hit td.h{background:#dafbe1}
tr.miss td.h{background:#ffebe9}
.bar{display:inline-block;height:.7em;background:#2da44e;vertical-align:middle}
.barbg{display:inline-block;width:120px;height:.7em;background:#ffebe9;margin-right:.4em}
code{font-size:90%}
summary{cursor:pointer;font-weight:600;margin:.4em 0}
.note{color:#57606a}
"""


def _bin_row(b: Bin, cov: Coverage, notes: Mapping[str, str]) -> str:
    hits = cov.hits.get(b.name, 0)
    first = cov.first.get(b.name, "")
    note = "" if hits else note_for(b.name, notes)
    cls = "hit" if hits else "miss"
    return (
        f"<tr class={cls}><td><code>{html.escape(b.name)}</code></td>"
        f"<td>{html.escape(b.spec)}</td><td>{html.escape(b.text)}"
        + (f"<div class=note>{html.escape(note)}</div>" if note else "")
        + f"</td><td class='n h'>{hits}</td><td>{html.escape(str(first))}</td></tr>"
    )


def html_report(
    cov: Coverage,
    plot: bool = True,
    notes: Optional[Mapping[str, str]] = None,
    title: str = "riscv-iommu functional coverage",
) -> str:
    """A self-contained HTML page: summary, closure plot (when ``plot`` and matplotlib
    is installed), and every group's bins with hits and the run that hit them first."""
    notes = notes or {}
    n = len(cov.covered())
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p><b>{n} of {len(BINS)} bins covered ({_pct(n, len(BINS))})</b> by "
        f"{len(cov.runs)} runs; coverage model <code>{MODEL_ID}</code>; "
        f"{len(cov.contributing())} runs hit a bin first. Generated {now}.</p>",
    ]
    png = closure_png(cov) if plot else None
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<h2>Coverage closure</h2><img alt='coverage closure plot' "
            f"src='data:image/png;base64,{data}'>"
        )
    else:
        parts.append(
            "<p class=note>No closure plot: install the <code>plot</code> extra "
            "(<code>pip install riscv-iommu[plot]</code>) to draw it.</p>"
            if plot
            else ""
        )
    parts.append("<h2>Groups</h2><table><tr><th>Group</th><th>Covered</th><th>Bins</th>")
    parts.append("<th>%</th><th>Spec</th><th>Decided by</th></tr>")
    for g in MODEL:
        c = len(cov.covered(g.name))
        width = int(120 * c / len(g.bins))
        parts.append(
            f"<tr><td><a href='#{g.name}'>{html.escape(g.title)}</a></td><td class=n>{c}</td>"
            f"<td class=n>{len(g.bins)}</td><td><span class=barbg><span class=bar "
            f"style='width:{width}px'></span></span>{_pct(c, len(g.bins))}</td>"
            f"<td>{html.escape(g.spec)}</td><td>{html.escape(g.decided_by)}</td></tr>"
        )
    parts.append("</table>")
    for g in MODEL:
        c = len(cov.covered(g.name))
        parts.append(
            f"<details id='{g.name}'><summary>{html.escape(g.title)}: {c} of {len(g.bins)}"
            f"</summary><table><tr><th>Bin</th><th>Spec</th><th>What hits it</th>"
            f"<th>Hits</th><th>First run</th></tr>"
        )
        parts.extend(_bin_row(b, cov, notes) for b in g.bins)
        parts.append("</table></details>")
    other = cov.outside()
    if other:
        parts.append("<h2>Hits outside the model</h2><ul>")
        parts.extend(f"<li><code>{html.escape(k)}</code>: {v}</li>" for k, v in other.items())
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "\n".join(p for p in parts if p)
