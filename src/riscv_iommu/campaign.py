"""Campaigns: many generator seeds, run in parallel, with their results merged.

:func:`run_seed` runs one seed: it generates the vectors (with a plugin's
collector attached to the model), replays them through the file format to
check they round-trip, and returns a JSON-able summary: pass/fail, request
and step counts, a histogram of fault causes, and the plugin's result.
:func:`run_campaign` runs a range of seeds on local processes
(:mod:`multiprocessing`) or on an existing Dask distributed cluster, merges
the results in seed order and keeps the seeds that added something new;
:func:`write_reports` writes the reports and the kept seeds' vector files.

Plugins (functional coverage) plug in through one small interface
(:class:`CampaignPlugin`), named by a ``"module:attribute"`` spec so every
worker process can load it.  Without one, a campaign still reports per-seed
pass/fail, counts and fault-cause histograms, and keeps the seeds that hit a
fault cause no earlier seed hit.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    runtime_checkable,
)

from .gen import PROFILES, generate
from .iommu import Iommu
from .vectors import dumps, loads, replay

__all__ = [
    "CampaignPlugin",
    "SeedCollector",
    "CampaignError",
    "CampaignReport",
    "DEFAULT_PLUGIN",
    "load_plugin",
    "run_seed",
    "run_campaign",
    "write_reports",
]

#: The plugin a campaign uses when none is named and it can be imported.
DEFAULT_PLUGIN = "riscv_iommu.coverage:campaign_plugin"

#: Seeds per task sent to a worker.
CHUNK = 8


class CampaignError(ValueError):
    """A campaign cannot run: bad arguments, a plugin that does not load, no Dask."""


@runtime_checkable
class SeedCollector(Protocol):
    """Collects one seed's result from the model it observes."""

    def on_model(self, iommu: Iommu) -> None:
        """Called once the model is built, before its first step: attach observers here."""

    def result(self) -> Any:
        """The seed's result, JSON-able (called after the last step)."""


@runtime_checkable
class CampaignPlugin(Protocol):
    """What a campaign needs of a plugin (e.g. functional coverage).

    ``collector(seed)`` makes a fresh :class:`SeedCollector` for each seed
    (in the worker).  ``merge(total, result)`` folds a seed's result into the
    running total (``total`` is None at first) and returns the new total and
    the names of the bins the result added.  ``report(total, out_dir)``
    writes the plugin's reports and returns the paths it wrote.
    """

    name: str

    def collector(self, seed: Optional[int] = None) -> SeedCollector:
        """A collector for one seed (``seed`` labels its result)."""

    def merge(self, total: Any, result: Any) -> Tuple[Any, List[str]]:
        """Fold one seed's result into the total; returns (total, new bins)."""

    def report(self, total: Any, out_dir: str) -> List[str]:
        """Write reports of the total into ``out_dir``; returns the paths written."""


def load_plugin(spec: str) -> CampaignPlugin:
    """The plugin named by ``"module:attribute"`` (an object, or a function returning one)."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise CampaignError(f"plugin {spec!r}: expected MODULE:ATTRIBUTE")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as err:
        raise CampaignError(f"plugin {spec!r}: cannot import {mod_name}: {err}") from None
    obj = getattr(mod, attr, None)
    if obj is None:
        raise CampaignError(f"plugin {spec!r}: {mod_name} has no {attr}")
    if not isinstance(obj, CampaignPlugin) and callable(obj):
        obj = obj()
    if not isinstance(obj, CampaignPlugin):
        raise CampaignError(f"plugin {spec!r} lacks collector(), merge() or report()")
    return obj


def default_plugin() -> Optional[str]:
    """:data:`DEFAULT_PLUGIN` when it loads, else None."""
    try:
        load_plugin(DEFAULT_PLUGIN)
    except CampaignError:
        return None
    return DEFAULT_PLUGIN


# --------------------------------------------------------------------------
# one seed
# --------------------------------------------------------------------------
def _summary(doc: Dict[str, Any]) -> Dict[str, Any]:
    causes: Dict[str, int] = {}
    statuses: Dict[str, int] = {}
    fq: Dict[str, int] = {}
    requests = 0
    for step in doc["steps"]:
        expect = step.get("expect", {})
        if step["op"] == "request":
            requests += 1
            rsp = expect["response"]
            statuses[rsp["status"]] = statuses.get(rsp["status"], 0) + 1
            if rsp["fault"] is not None:
                c = str(rsp["fault"]["cause"])
                causes[c] = causes.get(c, 0) + 1
        for rec in expect.get("fq", ()):
            c = str(rec["cause"])
            fq[c] = fq.get(c, 0) + 1
    return {
        "requests": requests,
        "steps": len(doc["steps"]),
        "causes": dict(sorted(causes.items(), key=lambda kv: int(kv[0]))),
        "fq_causes": dict(sorted(fq.items(), key=lambda kv: int(kv[0]))),
        "statuses": dict(sorted(statuses.items())),
    }


def run_seed(
    seed: int,
    requests: int = 40,
    profile: str = "mixed",
    plugin: Optional[str] = None,
    verify: bool = True,
) -> Dict[str, Any]:
    """Run one seed; returns its JSON-able result.

    ``plugin`` is a plugin spec (see :func:`load_plugin`); its collector is
    attached to the model that produces the expected results.  ``verify``
    replays the vectors (through their text) and fails the seed on any
    difference.  A generator or model exception fails the seed too: the
    error is in ``error``.
    """
    out: Dict[str, Any] = {"seed": seed, "ok": True, "error": None, "plugin": None}
    try:
        collector = load_plugin(plugin).collector(seed) if plugin else None
        hook = collector.on_model if collector is not None else None
        doc = generate(seed, requests, profile, on_model=hook)
        out.update(_summary(doc))
        if collector is not None:
            out["plugin"] = collector.result()
        if verify:
            result = replay(loads(dumps(doc), f"seed {seed}"))
            if not result.ok:
                out["ok"] = False
                out["error"] = "replay differs: " + "; ".join(result.diffs[:3])
    except Exception as err:  # a crash is the finding: report it, keep going
        tb = traceback.extract_tb(err.__traceback__)
        where = f" at {tb[-1].filename}:{tb[-1].lineno}" if tb else ""
        out.update(ok=False, error=f"{type(err).__name__}: {err}{where}")
        out.setdefault("requests", 0)
        out.setdefault("steps", 0)
        out.setdefault("causes", {})
        out.setdefault("fq_causes", {})
        out.setdefault("statuses", {})
    return out


def _run_chunk(task: Tuple[Sequence[int], int, str, Optional[str], bool]) -> List[Dict[str, Any]]:
    seeds, requests, profile, plugin, verify = task
    return [run_seed(s, requests, profile, plugin, verify) for s in seeds]


# --------------------------------------------------------------------------
# many seeds
# --------------------------------------------------------------------------
@dataclass
class CampaignReport:
    """The merged results of a campaign."""

    first: int
    last: int
    profile: str
    requests: int
    plugin: Optional[str]
    seeds: int = 0
    passed: int = 0
    failed: List[Dict[str, Any]] = field(default_factory=list)
    request_count: int = 0
    step_count: int = 0
    causes: Dict[str, int] = field(default_factory=dict)
    fq_causes: Dict[str, int] = field(default_factory=dict)
    statuses: Dict[str, int] = field(default_factory=dict)
    #: seeds that added something new: {"seed": n, "new": [bin names]}
    kept: List[Dict[str, Any]] = field(default_factory=list)
    #: the plugin's merged total
    total: Any = None
    seconds: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        """The report as JSON-able data."""
        return {
            "seeds": {"first": self.first, "last": self.last, "count": self.seeds},
            "profile": self.profile,
            "requests_per_seed": self.requests,
            "plugin": self.plugin,
            "passed": self.passed,
            "failed": self.failed,
            "requests": self.request_count,
            "steps": self.step_count,
            "causes": self.causes,
            "fq_causes": self.fq_causes,
            "statuses": self.statuses,
            "kept": self.kept,
            "seconds": round(self.seconds, 3),
            "seeds_per_second": round(self.seeds / self.seconds, 1) if self.seconds else None,
        }


def _add(hist: Dict[str, int], more: Dict[str, int]) -> None:
    for k, v in more.items():
        hist[k] = hist.get(k, 0) + v
    items = sorted(hist.items(), key=lambda kv: (len(kv[0]), kv[0]))  # numeric keys in order
    hist.clear()
    hist.update(items)


def parse_seeds(text: str) -> range:
    """``"A:B"`` -> seeds A..B-1 (``"N"`` -> seed N alone)."""
    a, sep, b = text.partition(":")
    try:
        lo = int(a, 0)
        hi = int(b, 0) if sep else lo + 1
    except ValueError:
        raise CampaignError(f"seeds {text!r}: expected A:B with integers A < B") from None
    if lo < 0 or hi <= lo:
        raise CampaignError(f"seeds {text!r}: expected 0 <= A < B")
    return range(lo, hi)


def _local(tasks: List[Any], jobs: int) -> Iterator[List[Dict[str, Any]]]:
    if jobs == 1:
        for t in tasks:
            yield _run_chunk(t)
        return
    # spawn: workers that do not inherit threads or locks of the caller
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(jobs) as pool:
        yield from pool.imap_unordered(_run_chunk, tasks)
        pool.close()
        pool.join()


def _dask(tasks: List[Any], scheduler: Any) -> Iterator[List[Dict[str, Any]]]:
    try:  # the optional extra: never imported by the core at module level
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise CampaignError(
            "--dask needs the optional extra: pip install 'riscv-iommu[dask]'"
        ) from None
    own = isinstance(scheduler, str)  # an address; else the caller's own Client
    try:
        client = distributed.Client(scheduler, timeout=10) if own else scheduler
    except (OSError, TimeoutError, ValueError) as err:
        raise CampaignError(f"cannot reach the Dask scheduler {scheduler!r}: {err}") from None
    try:
        futures = client.map(_run_chunk, tasks, pure=False)
        for fut in distributed.as_completed(futures):
            yield fut.result()
    finally:
        if own:
            client.close()


Progress = Callable[[int, int, int], None]


def run_campaign(
    seeds: Iterable[int],
    jobs: int = 1,
    profile: str = "mixed",
    requests: int = 40,
    plugin: Optional[str] = None,
    dask: Any = None,
    progress: Optional[Progress] = None,
    verify: bool = True,
) -> CampaignReport:
    """Run ``seeds`` and merge their results in seed order.

    ``jobs`` local worker processes (1: in this process), or ``dask``: a Dask
    scheduler address or a ``distributed.Client`` (then ``jobs`` is ignored).
    ``plugin`` is a plugin spec.  ``progress(done, total, failed)`` is called
    as results arrive.
    """
    seed_list = list(seeds)
    if not seed_list:
        raise CampaignError("no seeds")
    if profile not in PROFILES:
        raise CampaignError(f"unknown profile {profile!r} (one of {', '.join(PROFILES)})")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise CampaignError(f"jobs must be a positive int, not {jobs!r}")
    plug = load_plugin(plugin) if plugin else None
    tasks = [
        (seed_list[i : i + CHUNK], requests, profile, plugin, verify)
        for i in range(0, len(seed_list), CHUNK)
    ]
    rep = CampaignReport(seed_list[0], seed_list[-1], profile, requests, plugin)
    start = time.perf_counter()
    results = _dask(tasks, dask) if dask is not None else _local(tasks, jobs)
    pending: Dict[int, Dict[str, Any]] = {}
    order = iter(seed_list)
    want = next(order, None)
    done = 0
    for chunk in results:
        for r in chunk:
            pending[r["seed"]] = r
        done += len(chunk)
        while want is not None and want in pending:
            _merge(rep, plug, pending.pop(want))
            want = next(order, None)
        if progress is not None:
            progress(done, len(seed_list), len(rep.failed))
    rep.seconds = time.perf_counter() - start
    return rep


def _merge(rep: CampaignReport, plug: Optional[CampaignPlugin], r: Dict[str, Any]) -> None:
    rep.seeds += 1
    if r["ok"]:
        rep.passed += 1
    else:
        rep.failed.append({"seed": r["seed"], "error": r["error"]})
    rep.request_count += r["requests"]
    rep.step_count += r["steps"]
    new = [f"cause:{c}" for c in r["causes"] if c not in rep.causes]
    _add(rep.causes, r["causes"])
    _add(rep.fq_causes, r["fq_causes"])
    _add(rep.statuses, r["statuses"])
    if plug is not None and r["plugin"] is not None:
        rep.total, bins = plug.merge(rep.total, r["plugin"])
        new += list(bins)
    if new and r["ok"]:
        rep.kept.append({"seed": r["seed"], "new": new})


# --------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------
def report_text(rep: CampaignReport) -> str:
    """The human-readable summary."""
    d = rep.as_dict()
    lines = [
        f"campaign: seeds {rep.first}..{rep.last} ({rep.seeds}), profile {rep.profile}, "
        f"{rep.requests} requests per seed, plugin {rep.plugin or 'none'}",
        f"passed {rep.passed}, failed {len(rep.failed)}; {rep.request_count} requests, "
        f"{rep.step_count} steps in {rep.seconds:.1f} s ({d['seeds_per_second']} seeds/s)",
        "statuses: " + ", ".join(f"{k} {v}" for k, v in rep.statuses.items()),
        "fault causes of responses: "
        + (", ".join(f"{k}: {v}" for k, v in rep.causes.items()) or "none"),
        "fault-queue records: "
        + (", ".join(f"{k}: {v}" for k, v in rep.fq_causes.items()) or "none"),
        f"kept seeds (added something new): {len(rep.kept)}",
    ]
    for f in rep.failed[:20]:
        lines.append(
            f"FAILED seed {f['seed']}: {f['error']}  (reproduce: riscv-iommu gen --seed "
            f"{f['seed']} --requests {rep.requests} --profile {rep.profile})"
        )
    if len(rep.failed) > 20:
        lines.append(f"... and {len(rep.failed) - 20} more failed seeds (summary.json)")
    return "\n".join(lines) + "\n"


def write_reports(rep: CampaignReport, out_dir: str) -> List[str]:
    """Write ``summary.json``, ``summary.txt``, the kept seeds' vectors (``kept/``) and the
    plugin's reports into ``out_dir``; returns the paths written."""
    os.makedirs(os.path.join(out_dir, "kept"), exist_ok=True)
    paths = []
    path = os.path.join(out_dir, "summary.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(rep.as_dict(), fh, indent=1, sort_keys=True)
        fh.write("\n")
    paths.append(path)
    path = os.path.join(out_dir, "summary.txt")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(report_text(rep))
    paths.append(path)
    for k in rep.kept:
        path = os.path.join(out_dir, "kept", f"seed-{k['seed']}.json")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(dumps(generate(k["seed"], rep.requests, rep.profile)))
        paths.append(path)
    if rep.plugin and rep.total is not None:
        paths += load_plugin(rep.plugin).report(rep.total, out_dir)
    return paths


class ProgressBar:
    """A progress bar on a stream: redrawn in place on a terminal, else a line per 10%."""

    def __init__(self, stream: Any = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width
        self.start = time.perf_counter()
        self.last_decile = -1

    def __call__(self, done: int, total: int, failed: int) -> None:
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        text = f"{done}/{total} seeds, {failed} failed, {rate:.1f} seeds/s"
        if self.tty:
            filled = self.width * done // total
            bar = "#" * filled + "-" * (self.width - filled)
            end = "\n" if done == total else ""
            print(f"\r[{bar}] {text}", end=end, file=self.stream, flush=True)
            return
        decile = 10 * done // total
        if decile != self.last_decile:
            self.last_decile = decile
            print(f"campaign: {text}", file=self.stream, flush=True)


# --------------------------------------------------------------------------
# the ``riscv-iommu campaign`` command
# --------------------------------------------------------------------------
def add_cli(sub: Any) -> None:
    """Register ``riscv-iommu campaign`` on an argparse sub-parser set."""

    def seeds(text: str) -> range:
        try:
            return parse_seeds(text)
        except CampaignError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    def count(low: int) -> Callable[[str], int]:
        def conv(text: str) -> int:
            try:
                v = int(text, 0)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
            if v < low:
                raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {v}")
            return v

        return conv

    p = sub.add_parser(
        "campaign",
        help="run many generator seeds in parallel and merge their results",
        description="Generate and replay the vectors of every seed in A:B on local worker "
        "processes (or a Dask cluster), merge the results, keep the seeds that added something "
        "new, and write the reports to the output directory (docs/stimulus.md).",
    )
    p.add_argument("--seeds", type=seeds, required=True, help="seeds A:B (A to B-1)")
    p.add_argument("--jobs", type=count(1), default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--profile", choices=list(PROFILES), default="mixed", help="generator profile")
    p.add_argument("--requests", type=count(0), default=40, help="requests per seed (default 40)")
    p.add_argument("--out", default="campaign-out", help="report directory (default campaign-out)")
    p.add_argument(
        "--plugin",
        help=f"per-seed collector as MODULE:ATTRIBUTE (default {DEFAULT_PLUGIN} when present)",
    )
    p.add_argument("--no-plugin", action="store_true", help="run without any plugin")
    p.add_argument(
        "--dask", metavar="SCHEDULER", help="run on this Dask scheduler (tcp://host:port)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=_cli)


def _cli(args: argparse.Namespace, stream: Any) -> int:
    plugin = None if args.no_plugin else (args.plugin or default_plugin())
    try:
        rep = run_campaign(
            args.seeds,
            jobs=args.jobs,
            profile=args.profile,
            requests=args.requests,
            plugin=plugin,
            dask=args.dask,
            progress=ProgressBar(sys.stderr),
        )
        paths = write_reports(rep, args.out)
    except CampaignError as err:
        return _fail(args, stream, str(err))
    except OSError as err:
        return _fail(args, stream, f"cannot write {args.out}: {err.strerror}")
    if args.json:
        json.dump({**rep.as_dict(), "reports": paths}, stream, indent=1, sort_keys=True)
        stream.write("\n")
    else:
        stream.write(report_text(rep))
        print(f"reports: {', '.join(paths[:2])} (+{len(paths) - 2} files)", file=stream)
    return 1 if rep.failed else 0


def _fail(args: argparse.Namespace, stream: Any, message: str) -> int:
    if args.json:
        json.dump({"error": {"message": message}}, stream)
        stream.write("\n")
    print(f"riscv-iommu campaign: {message}", file=sys.stderr)
    return 2
