"""sinklab.reports.render: the package's templates, HTML autoescaped and Markdown left as written."""

from __future__ import annotations

from sinklab.reports import render


def test_html_is_escaped_and_markdown_is_not() -> None:
    context = {
        "sweep": {"suites": ["a<b>"], "scale": "tiny & small", "note": "n"},
        "results": {},
        "seeds": [],
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
