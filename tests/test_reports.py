"""sinklab.reports.render: the package's templates, HTML autoescaped and Markdown left as written."""

from __future__ import annotations

from sinklab.reports import render


def test_html_is_escaped_and_markdown_is_not() -> None:
    context = {
        "sweep": {"suites": ["a<b>"], "scale": "tiny & small", "note": "n"},
        "results": {},
        "seed_summary": "2 finished runs",
        "counts": {},
        "onset": "x",
        "rule": "Sink_1 >= 5",
        "findings": [],
        "not_covered": [],
        "rows": [],
        "unreadable": {},
        "images": {},
        "overview": None,
        "onset_figure": None,
    }
    page = render("sinklab.experiments", "report.html.j2", **context, colours={})
    assert "a&lt;b&gt; at scale tiny &amp; small" in page and "Sink_1 &gt;= 5" in page
    markdown = render("sinklab.experiments", "report.md.j2", **context)
    assert "a<b> at scale tiny & small" in markdown and "Sink_1 >= 5" in markdown
    assert markdown.endswith("\n")


def test_a_pipe_in_a_markdown_cell_stays_inside_its_cell() -> None:
    from types import SimpleNamespace

    claim = SimpleNamespace(text="the value norm is small", paper="||v1|| < mean ||vt||")
    finding = SimpleNamespace(ours="||v1|| / mean: 0.35", verdict="reproduced", rule="a | b")
    from sinklab.experiments.report import claim_table

    table = claim_table([(claim, finding)])
    context = {"sweep": {"suites": ["s"], "scale": "tiny"}, "claim_table": table, "counts": {}}
    markdown = render("sinklab.experiments", "report.md.j2", **context)
    row = next(line for line in markdown.splitlines() if line.startswith("| the value norm"))
    cells = [c for c in row.replace("\\|", "").split("|")[1:-1]]
    assert len(cells) == 5, row  # claim, paper, ours, verdict, rule
    assert "\\|\\|v1\\|\\|" in row
