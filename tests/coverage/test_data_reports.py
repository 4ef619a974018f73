"""Coverage data (merge, JSON), the reports, the CLI and the campaign plugin."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riscv_iommu import coverage
from riscv_iommu.cli import main
from riscv_iommu.coverage import BINS, MODEL, Coverage, CoverageFileError, load, merge
from riscv_iommu.coverage.data import label_key
from riscv_iommu.coverage.report import note_for

NAMES = sorted(BINS)[:40] + ["not.in.the.model"]

labels = st.one_of(st.integers(0, 50), st.sampled_from(["a", "b", "tests/x.py::t"]))
runs = st.builds(
    Coverage.of_run,
    labels,
    st.dictionaries(st.sampled_from(NAMES), st.integers(0, 5), max_size=12),
)


@settings(max_examples=60, deadline=None)
@given(runs, runs, runs)
def test_merge_is_associative_and_commutative(a: Coverage, b: Coverage, c: Coverage) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert merge([a, b, c]) == merge([c, a, b])
    assert merge([]) == Coverage()


@settings(max_examples=40, deadline=None)
@given(st.lists(runs, max_size=5))
def test_json_round_trip(items: List[Coverage]) -> None:
    cov = merge(items)
    text = json.dumps(cov.to_json())
    assert Coverage.from_json(json.loads(text)) == cov


def test_merge_sums_hits_and_keeps_first_runs() -> None:
    n1, n2 = "cause.13.ttyp.2", "dc.rule.3"
    a = Coverage.of_run(5, {n1: 2, n2: 0})
    b = Coverage.of_run(3, {n1: 1})
    c = Coverage.of_run("test_x", {n2: 4})
    m = merge([a, b, c])
    assert m.hits == {n1: 3, n2: 4}
    assert m.first == {n1: 3, n2: "test_x"}
    assert m.runs == [3, 5, "test_x"]
    assert m.covered() == {n1, n2}
    assert m.covered("dc_rules") == {n2}
    assert m.closure() == [(3, 1), (5, 1), ("test_x", 2)]
    assert m.contributing() == [3, "test_x"]
    assert m.percent() == pytest.approx(200.0 / len(BINS))
    assert m.percent("dc_rules") == pytest.approx(100.0 / 25)
    assert [b.name for b in m.missing("dc_rules")][:2] == ["dc.rule.1", "dc.rule.2"]
    assert len(m.missing()) == len(BINS) - 2
    assert repr(m) == f"Coverage(2/{len(BINS)} bins, 3 runs)"
    assert label_key(2) < label_key(10) < label_key("a")
    # a repeated run label counts once on the closure curve
    twice = m.merge(Coverage.of_run(3, {}))
    assert twice.runs == [3, 3, 5, "test_x"] and twice.closure() == m.closure()
    with pytest.raises(TypeError):
        m.merge({})  # type: ignore[arg-type]
    assert (m == 1) is False


def test_outside_bins_are_kept_and_reported() -> None:
    m = Coverage.of_run(0, {"old.bin": 2, "dc.rule.1": 1})
    assert m.outside() == {"old.bin": 2}
    assert m.covered() == {"dc.rule.1"}
    assert "old.bin" in coverage.text_report(m)
    assert "`old.bin`: 2" in coverage.markdown_report(m)
    assert "<code>old.bin</code>: 2" in coverage.html_report(m, plot=False)


@pytest.mark.parametrize(
    "obj, field",
    [
        ([], "not a JSON object"),
        ({"format": "x"}, "field 'format'"),
        ({"format": "riscv-iommu-coverage", "version": 9}, "field 'version'"),
        ({"format": "riscv-iommu-coverage", "version": 1, "runs": {}}, "field 'runs'"),
        ({"format": "riscv-iommu-coverage", "version": 1, "hits": []}, "field 'hits'"),
        ({"format": "riscv-iommu-coverage", "version": 1, "first": []}, "field 'first'"),
        ({"format": "riscv-iommu-coverage", "version": 1, "runs": [1.5]}, "field 'runs[0]'"),
        ({"format": "riscv-iommu-coverage", "version": 1, "hits": {"a": -1}}, "field 'hits.a'"),
        (
            {"format": "riscv-iommu-coverage", "version": 1, "hits": {"a": 1}, "first": {"a": []}},
            "field 'first.a'",
        ),
        (
            {"format": "riscv-iommu-coverage", "version": 1, "first": {"a": 1}},
            "field 'first.a': the bin has no hits",
        ),
    ],
)
def test_from_json_names_the_field(obj: Any, field: str) -> None:
    with pytest.raises(CoverageFileError, match="cov.json: " + field.replace("[", r"\[")):
        Coverage.from_json(obj, "cov.json")
    with pytest.raises(CoverageFileError, match="label"):
        Coverage.of_run(True, {})  # type: ignore[arg-type]


def test_save_load_and_file_errors(tmp_path: Path) -> None:
    cov = Coverage.of_run(1, {"dc.rule.2": 3})
    p = tmp_path / "c.json"
    cov.save(str(p))
    assert load(str(p)) == cov
    bad = tmp_path / "bad.json"
    bad.write_text('{"format":\n  nope}')
    with pytest.raises(CoverageFileError, match=r"bad.json: line 2 column 3"):
        load(str(bad))
    with pytest.raises(CoverageFileError, match="missing.json: No such file"):
        load(str(tmp_path / "missing.json"))
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CoverageFileError, match="not a UTF-8 text file"):
        load(str(binary))


def _sample() -> Coverage:
    return merge(
        [
            Coverage.of_run(0, {"dc.rule.1": 1, "cause.13.ttyp.2": 2}),
            Coverage.of_run(1, {"dc.rule.2": 1}),
            Coverage.of_run(2, {"dc.rule.1": 1}),
        ]
    )


def test_text_report() -> None:
    text = coverage.text_report(_sample(), missing=True)
    lines = text.splitlines()
    assert lines[0].startswith("coverage of 3 run(s), model ")
    assert any(line.split()[:3] == ["dc_rules", "2", "25"] for line in lines)
    assert any(line.split()[:3] == ["total", "3", str(len(BINS))] for line in lines)
    assert "bins never hit:" in text and "dc.rule.3 " in text and " dc.rule.1 " not in text


def test_markdown_report_with_notes() -> None:
    notes = {"dc.rule.*": "a generator change", "dc.rule.4": "exact", "x*": "no"}
    assert note_for("dc.rule.4", notes) == "exact"
    assert note_for("dc.rule.5", notes) == "a generator change"
    assert note_for("pc.rule.1", notes) == ""
    md = coverage.markdown_report(_sample(), notes, title="T", intro="Hello.")
    assert md.startswith("# T\n\nHello.\n\n**3 of ")
    assert "| `dc.rule.4` | §DC_MISCONFIG rule 4 | exact |" in md
    assert "| `dc.rule.5` | §DC_MISCONFIG rule 5 | a generator change |" in md
    assert "| `pc.rule.1` | §PC_MISCONFIG rule 1 | (no note yet) |" in md
    assert "`dc.rule.1`" not in md.split("## Bins never hit")[1]
    for g in MODEL:
        assert f"(`{g.name}`)" in md


def test_html_without_and_with_the_plot(monkeypatch: pytest.MonkeyPatch) -> None:
    cov = _sample()
    page = coverage.html_report(cov, notes={"dc.rule.3": "why <not>"})
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "data:image/png;base64," in page  # the plot extra is installed in the test venv
    assert "why &lt;not&gt;" in page
    png = coverage.closure_png(cov)
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert coverage.closure_png(Coverage()) is not None  # empty: axes only
    named = merge([Coverage.of_run("t1", {"dc.rule.1": 1}), Coverage.of_run("t2", {})])
    assert coverage.closure_png(named) is not None
    assert "data:image/png" not in coverage.html_report(cov, plot=False)
    assert "plot extra" not in coverage.html_report(cov, plot=False)
    # without matplotlib: tables only, and a hint
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    assert coverage.closure_png(cov) is None
    page = coverage.html_report(cov)
    assert "data:image/png" not in page and "plot</code> extra" in page
    assert "<details id='dc_rules'>" in page


def _write(tmp_path: Path, name: str, cov: Coverage) -> str:
    p = tmp_path / name
    cov.save(str(p))
    return str(p)


def test_markdown_report_with_every_bin_hit() -> None:
    """A run that hits every bin: 100% and the list of bins never hit says "None"."""
    md = coverage.markdown_report(Coverage.of_run("all", dict.fromkeys(BINS, 1)))
    assert f"**{len(BINS)} of {len(BINS)} bins covered (100.0%)**" in md
    assert md.split("## Bins never hit")[1].strip() == "None: every bin of the model is hit."


def test_cli_merge_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path, "a.json", Coverage.of_run(0, {"dc.rule.1": 1}))
    b = _write(tmp_path, "b.json", Coverage.of_run(1, {"dc.rule.2": 1}))
    out = tmp_path / "m.json"
    assert main(["coverage", "merge", a, b, "-o", str(out)]) == 0
    assert load(str(out)).covered() == {"dc.rule.1", "dc.rule.2"}
    assert main(["coverage", "merge", a]) == 0
    assert json.loads(capsys.readouterr().out)["hits"] == {"dc.rule.1": 1}
    assert main(["coverage", "report", a, b]) == 0
    assert "dc_rules" in capsys.readouterr().out
    assert main(["coverage", "report", a, "--missing"]) == 0
    assert "bins never hit:" in capsys.readouterr().out
    assert main(["coverage", "report", a, b, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == [0, 1]
    assert main(["coverage", "report", a, b, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == [0, 1]
    assert main(["coverage", "merge", a, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == [0]
    notes = tmp_path / "notes.json"
    notes.write_text(json.dumps({"dc.rule.3": "because"}))
    md = tmp_path / "r.md"
    args = ["coverage", "report", a, "--format", "markdown", "--notes", str(notes)]
    assert main([*args, "--title", "Suite", "-o", str(md)]) == 0
    assert md.read_text().startswith("# Suite") and "because" in md.read_text()
    html = tmp_path / "r.html"
    assert main(["coverage", "report", a, "--format", "html", "--no-plot", "-o", str(html)]) == 0
    assert "data:image/png" not in html.read_text()
    assert main(["coverage", "report", a, "--format", "html", "-o", str(html)]) == 0
    assert "data:image/png" in html.read_text()
    assert main(["coverage", "report", a, "--fail-under", "0.1"]) == 0
    capsys.readouterr()
    assert main(["coverage", "report", a, "--fail-under", "50"]) == 1
    assert "is under 50.0%" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "missing.json: No such file or directory"),
        ("{", "bad.json: line 1 column 2"),
        ('{"format": "riscv-iommu-coverage", "version": 1, "runs": 3}', "field 'runs'"),
    ],
)
def test_cli_bad_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: Any, message: str
) -> None:
    name = "missing.json" if content is None else "bad.json"
    if content is not None:
        (tmp_path / name).write_text(content)
    for action in ("merge", "report"):
        assert main(["coverage", action, str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("riscv-iommu: ") and message in err and "Traceback" not in err


def test_cli_bad_notes_output_and_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _write(tmp_path, "a.json", Coverage.of_run(0, {"dc.rule.1": 1}))
    cases: Dict[str, str] = {
        "[1]": "not a JSON object",
        '{"x": 1}': "field 'x': expected a string",
        "{": "line 1 column 2",
    }
    for text, message in cases.items():
        notes = tmp_path / "n.json"
        notes.write_text(text)
        assert main(["coverage", "report", a, "--format", "markdown", "--notes", str(notes)]) == 2
        assert message in capsys.readouterr().err
    (tmp_path / "bin.json").write_bytes(b"\xff")
    assert main(["coverage", "report", a, "--notes", str(tmp_path / "bin.json")]) == 2
    assert main(["coverage", "report", a, "--notes", str(tmp_path / "none.json")]) == 2
    assert "none.json: No such file" in capsys.readouterr().err
    assert main(["coverage", "report", a, "-o", str(tmp_path / "no" / "dir" / "x")]) == 2
    assert "No such file or directory" in capsys.readouterr().err
    for argv in (
        ["coverage"],
        ["coverage", "report"],
        ["coverage", "report", a, "--format", "pdf"],
        ["coverage", "report", a, "--fail-under", "x"],
        ["coverage", "report", a, "--fail-under", "101"],
    ):
        with pytest.raises(SystemExit) as ex:
            main(argv)
        assert ex.value.code == 2
        assert "Traceback" not in capsys.readouterr().err


class _FakeIommu:
    """Enough of an Iommu for the plugin: configuration and attach()."""

    def __init__(self) -> None:
        import riscv_iommu as rv

        self.caps = rv.Capabilities.full()
        self.params = rv.IommuParams()
        self.gxl = 0
        self.observers: List[Any] = []

    def attach(self, observer: Any) -> None:
        self.observers.append(observer)


def test_campaign_plugin(tmp_path: Path) -> None:
    from riscv_iommu.events import Check

    plug = coverage.campaign_plugin
    assert plug.name == "coverage"
    results = []
    for seed, rule in ((7, 3), (8, 3), (9, 4)):
        sc = plug.collector(seed)
        fake = _FakeIommu()
        sc.on_model(fake)
        fake.observers[0](Check("DC_MISCONFIG", str(rule), "", False, "", 259))
        results.append(json.loads(json.dumps(sc.result())))
    total = None
    added = []
    for r in results:
        total, new = plug.merge(total, r)
        added.append(new)
    assert added == [["dc.rule.3"], [], ["dc.rule.4"]]
    assert total is not None and total.runs == [7, 8, 9] and total.contributing() == [7, 9]
    # without seeds, runs are numbered in merge order
    t2, _ = plug.merge(None, {"label": None, "hits": {"dc.rule.1": 1}})
    t2, _ = plug.merge(t2, {"hits": {}})
    assert t2.runs == [0, 1]
    with pytest.raises(CoverageFileError):
        plug.merge(None, {"hits": 3})
    paths = plug.report(total, str(tmp_path / "out"))
    assert [Path(p).name for p in paths] == [
        "coverage.json",
        "coverage.txt",
        "coverage.md",
        "coverage.html",
    ]
    assert load(paths[0]) == total


def test_docs_table_matches_the_model() -> None:
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "coverage.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (\d+) \|", text, re.M))
    assert {g.name: str(len(g.bins)) for g in MODEL} == rows
