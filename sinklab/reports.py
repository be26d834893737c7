"""Reports (Markdown and HTML) rendered from the Jinja2 templates shipped in a package's templates/ folder:
the demo and reproduce reports (sinklab.experiments) and the ablation page (sinklab.ablate)."""

from __future__ import annotations

from typing import Any


def render(package: str, template: str, /, **context: Any) -> str:
    """`package`'s templates/`template` rendered with `context`. A *.html.j2 template is autoescaped (a claim
    text or a model name with < or & stays text); Markdown is not (it would show &amp;)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        # select_autoescape(["html"]) tests the last suffix, and every template here ends in .j2.
        autoescape=lambda name: name is not None and name.endswith(".html.j2"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = markdown_cell
    return env.get_template(template).render(**context)


def markdown_cell(text: Any) -> str:
    """Text for one cell of a Markdown table: a '|' in it would end the cell, so it is escaped."""
    return str(text).replace("|", "\\|")
