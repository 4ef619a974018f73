"""Campaigns: one seed, many seeds on local processes and on Dask, plugins, reports."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from riscv_iommu import campaign, gen, vectors
from riscv_iommu.campaign import CampaignError

PLUGIN = "campaign_plugin:PLUGIN"


def cli(*args: str) -> Tuple[int, str, str]:
    from riscv_iommu.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args), stream=out)
        except SystemExit as e:
            rc = int(e.code or 0)
    return rc, out.getvalue(), err.getvalue()


def test_run_seed_summarises_the_vectors() -> None:
    r = campaign.run_seed(4, 10, "faults", PLUGIN)
    d = gen.generate(4, 10, "faults")
    reqs = [s for s in d["steps"] if s["op"] == "request"]
    faults = [s["expect"]["response"]["fault"] for s in reqs]
    assert r["ok"] and r["error"] is None
    assert r["requests"] == 10 and r["steps"] == len(d["steps"])
    assert sum(r["causes"].values()) == sum(f is not None for f in faults)
    assert sum(r["statuses"].values()) == 10
    assert r["plugin"][0].startswith("be:")


def test_run_seed_reports_a_crash_and_a_replay_difference(monkeypatch: Any) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise KeyError("broken")

    monkeypatch.setattr(campaign, "generate", boom)
    r = campaign.run_seed(1, 3)
    assert not r["ok"] and r["error"].startswith("KeyError: 'broken' at ")
    assert r["requests"] == 0 and r["causes"] == {}
    monkeypatch.undo()
    monkeypatch.setattr(
        campaign, "replay", lambda doc: vectors.ReplayResult(1, ["steps[0] x: expected 1, got 2"])
    )
    r = campaign.run_seed(1, 3)
    assert not r["ok"] and r["error"] == "replay differs: steps[0] x: expected 1, got 2"


def report_data(rep: campaign.CampaignReport) -> Dict[str, Any]:
    d = rep.as_dict()
    del d["seconds"], d["seeds_per_second"]
    return d


@pytest.fixture(scope="module")
def inline() -> campaign.CampaignReport:
    return campaign.run_campaign(range(10, 22), jobs=1, profile="mixed", requests=8, plugin=PLUGIN)


def test_campaign_merges_in_seed_order_and_keeps_new_bins(inline: campaign.CampaignReport) -> None:
    rep = inline
    assert rep.seeds == 12 and rep.passed == 12 and rep.failed == []
    assert rep.request_count == 96
    first = campaign.run_seed(10, 8, "mixed", PLUGIN)
    assert rep.kept[0]["seed"] == 10
    assert set(rep.kept[0]["new"]) == {f"cause:{c}" for c in first["causes"]} | set(first["plugin"])
    seen: set = set()
    for k in rep.kept:  # every kept seed added bins no earlier seed had
        assert not seen & set(k["new"])
        seen |= set(k["new"])
    assert sum(rep.total.values()) == 4 * 12


def test_two_processes_give_the_same_report(inline: campaign.CampaignReport) -> None:
    calls: List[Tuple[int, int, int]] = []
    rep = campaign.run_campaign(
        range(10, 22),
        jobs=2,
        requests=8,
        plugin=PLUGIN,
        progress=lambda *a: calls.append(a),
    )
    assert report_data(rep) == report_data(inline)
    assert calls[-1] == (12, 12, 0) and len(calls) == 2


def test_dask_cluster_gives_the_same_report(inline: campaign.CampaignReport) -> None:
    """The same campaign on a Dask distributed cluster (the [dask] extra; CI installs it)."""
    if os.environ.get("CI"):
        import distributed
    else:
        distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    )
    try:
        rep = campaign.run_campaign(
            range(10, 22), requests=8, plugin=PLUGIN, dask=cluster.scheduler_address
        )
        assert report_data(rep) == report_data(inline)
        with distributed.Client(cluster) as client:  # a Client of the caller's own
            rep = campaign.run_campaign(range(10, 14), requests=8, dask=client)
            assert rep.seeds == 4 and rep.passed == 4 and rep.plugin is None
    finally:
        cluster.close()


def test_dask_scheduler_that_cannot_be_reached(monkeypatch: Any) -> None:
    distributed = pytest.importorskip("distributed")

    def refuse(*a: Any, **k: Any) -> Any:
        raise OSError("Timed out trying to connect")

    monkeypatch.setattr(distributed, "Client", refuse)
    with pytest.raises(CampaignError, match="cannot reach the Dask scheduler 'tcp://x:1'"):
        campaign.run_campaign(range(2), dask="tcp://x:1")


def test_dask_missing(monkeypatch: Any) -> None:
    import importlib

    real = importlib.import_module

    def no_dask(name: str, *a: Any) -> Any:
        if name == "distributed":
            raise ImportError(name)
        return real(name, *a)

    monkeypatch.setattr(campaign.importlib, "import_module", no_dask)
    with pytest.raises(CampaignError, match=r"pip install 'riscv-iommu\[dask\]'"):
        campaign.run_campaign(range(2), dask="tcp://x:1")


def test_plugins_load_by_spec() -> None:
    assert campaign.load_plugin(PLUGIN).name == "test-bins"
    assert campaign.load_plugin("campaign_plugin:make").name == "test-bins"
    for spec, message in [
        ("campaign_plugin", "expected MODULE:ATTRIBUTE"),
        ("no_such_module_x:P", "cannot import no_such_module_x"),
        ("campaign_plugin:missing", "campaign_plugin has no missing"),
        ("campaign_plugin:NOT_A_PLUGIN", "lacks collector(), merge() or report()"),
    ]:
        with pytest.raises(CampaignError, match=message.replace("(", r"\(").replace(")", r"\)")):
            campaign.load_plugin(spec)


def test_default_plugin(monkeypatch: Any) -> None:
    monkeypatch.setattr(campaign, "DEFAULT_PLUGIN", PLUGIN)
    assert campaign.default_plugin() == PLUGIN
    monkeypatch.setattr(campaign, "DEFAULT_PLUGIN", "no_such_module_x:plugin")
    assert campaign.default_plugin() is None


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"seeds": []}, "no seeds"),
        ({"seeds": [1], "profile": "x"}, "unknown profile 'x'"),
        ({"seeds": [1], "jobs": 0}, "jobs must be a positive int, not 0"),
        ({"seeds": [1], "plugin": "nope"}, "expected MODULE:ATTRIBUTE"),
    ],
)
def test_campaign_arguments(kw: Dict[str, Any], message: str) -> None:
    with pytest.raises(CampaignError, match=message):
        campaign.run_campaign(**kw)


def test_parse_seeds() -> None:
    assert campaign.parse_seeds("3:7") == range(3, 7)
    assert campaign.parse_seeds("0x10:0x12") == range(16, 18)
    assert campaign.parse_seeds("5") == range(5, 6)
    for bad in ("7:3", "-1:2", "a:b", "3:3"):
        with pytest.raises(CampaignError):
            campaign.parse_seeds(bad)


def test_reports_and_kept_vectors(inline: campaign.CampaignReport, tmp_path: Path) -> None:
    paths = campaign.write_reports(inline, str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["passed"] == 12 and summary["kept"] == inline.kept
    assert summary["seeds"] == {"first": 10, "last": 21, "count": 12}
    text = (tmp_path / "summary.txt").read_text()
    assert text.startswith("campaign: seeds 10..21 (12), profile mixed, 8 requests per seed")
    kept = sorted(tmp_path.glob("kept/*.json"))
    assert len(kept) == len(inline.kept)
    for f in kept:
        assert vectors.replay(vectors.load(str(f))).ok
    assert json.loads((tmp_path / "bins.json").read_text()) == inline.total
    assert str(tmp_path / "bins.json") in paths


def test_failed_seeds_in_the_report(monkeypatch: Any) -> None:
    real = campaign.run_seed

    def flaky(seed: int, *a: Any) -> Dict[str, Any]:
        r = real(seed, *a)
        if seed % 2:
            r.update(ok=False, error="boom")
        return r

    monkeypatch.setattr(campaign, "run_seed", flaky)
    rep = campaign.run_campaign(range(25), requests=1, profile="legal")
    assert [f["seed"] for f in rep.failed] == list(range(1, 25, 2))
    assert all(k["seed"] % 2 == 0 for k in rep.kept)
    text = campaign.report_text(rep)
    assert (
        "FAILED seed 1: boom  (reproduce: riscv-iommu gen --seed 1 --requests 1 --profile legal)"
        in text
    )
    assert text.rstrip().endswith("... and 0 more failed seeds (summary.json)") is False
    rep.failed *= 2
    assert "... and 4 more failed seeds (summary.json)" in campaign.report_text(rep)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_tty_and_log() -> None:
    tty = _Tty()
    bar = campaign.ProgressBar(tty, width=10)
    bar(5, 10, 1)
    bar(10, 10, 1)
    lines = tty.getvalue().split("\r")
    assert lines[1].startswith("[#####-----] 5/10 seeds, 1 failed, ")
    assert lines[2].startswith("[##########] 10/10 seeds, 1 failed, ") and lines[2].endswith("\n")
    log = io.StringIO()
    bar = campaign.ProgressBar(log)
    for done in (1, 2, 9, 10):
        bar(done, 10, 0)
    assert [x.split(",")[0] for x in log.getvalue().splitlines()] == [
        "campaign: 1/10 seeds",
        "campaign: 2/10 seeds",
        "campaign: 9/10 seeds",
        "campaign: 10/10 seeds",
    ]
    log = io.StringIO()
    bar = campaign.ProgressBar(log)
    bar(1, 100, 0)
    bar(2, 100, 0)
    assert len(log.getvalue().splitlines()) == 1


# --------------------------------------------------------------------------
# riscv-iommu campaign
# --------------------------------------------------------------------------
def test_campaign_command(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    rc, out, err = cli(
        "campaign", "--seeds", "0:6", "--jobs", "1", "--requests", "5", "--profile", "legal",
        "--out", str(out_dir), "--plugin", PLUGIN,
    )  # fmt: skip
    assert rc == 0
    assert out.startswith("campaign: seeds 0..5 (6), profile legal, 5 requests per seed, plugin ")
    assert f"reports: {out_dir / 'summary.json'}, {out_dir / 'summary.txt'}" in out
    assert err.startswith("campaign: 6/6 seeds, 0 failed") or "campaign: " in err
    assert (out_dir / "bins.json").exists()
    rc, out, _ = cli(
        "campaign", "--seeds", "0:2", "--jobs", "1", "--requests", "1", "--out", str(out_dir),
        "--no-plugin",
    )  # fmt: skip
    assert rc == 0 and ", plugin none" in out


def test_campaign_command_fails_with_failed_seeds(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(campaign, "generate", lambda *a, **k: 1 / 0)
    rc, out, _ = cli(
        "campaign", "--seeds", "0:2", "--jobs", "1", "--out", str(tmp_path), "--no-plugin"
    )
    assert rc == 1 and "FAILED seed 0: ZeroDivisionError" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--seeds", "5:1"], "argument --seeds: seeds '5:1': expected 0 <= A < B"),
        (["--seeds", "0:2", "--jobs", "0"], "argument --jobs: expected an integer >= 1, got 0"),
        (["--seeds", "0:2", "--jobs", "x"], "argument --jobs: expected an integer, got 'x'"),
        (["--seeds", "0:2", "--profile", "z"], "argument --profile: invalid choice: 'z'"),
        (["--seeds", "0:2", "--plugin", "nomodule_zz:x"], "riscv-iommu campaign: plugin"),
        ([], "the following arguments are required: --seeds"),
    ],
)
def test_campaign_command_validates_arguments(
    args: List[str], message: str, tmp_path: Path
) -> None:
    rc, out, err = cli("campaign", *args, "--out", str(tmp_path))
    assert rc == 2 and message in err and "Traceback" not in err


def test_campaign_command_unwritable_output(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    rc, _, err = cli(
        "campaign", "--seeds", "0:1", "--jobs", "1", "--requests", "1", "--no-plugin",
        "--out", str(tmp_path / "file"),
    )  # fmt: skip
    assert rc == 2 and err.splitlines()[-1].startswith(
        f"riscv-iommu campaign: cannot write {tmp_path / 'file'}: "
    )


def test_campaign_command_with_a_bad_dask_address(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    rc, _, err = cli("campaign", "--seeds", "0:1", "--dask", "no-port", "--out", str(tmp_path))
    assert rc == 2
    assert "riscv-iommu campaign: cannot reach the Dask scheduler 'no-port': " in err


def test_campaign_command_json(tmp_path: Path) -> None:
    rc, out, _ = cli(
        "campaign", "--seeds", "0:3", "--jobs", "1", "--requests", "2", "--no-plugin",
        "--out", str(tmp_path), "--json",
    )  # fmt: skip
    data = json.loads(out)
    assert rc == 0 and data["passed"] == 3 and data["requests"] == 6
    assert data["reports"][0] == str(tmp_path / "summary.json")
    rc, out, _ = cli(
        "campaign", "--seeds", "0:1", "--plugin", "x", "--json", "--out", str(tmp_path)
    )
    assert rc == 2 and json.loads(out) == {
        "error": {"message": "plugin 'x': expected MODULE:ATTRIBUTE"}
    }
