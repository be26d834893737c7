"""`sinklab report DIR`: rebuild the claim table and plots of a `reproduce` directory."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="a `sinklab reproduce --out` directory")


def run(args: argparse.Namespace) -> int:
    from sinklab.experiments.report import claim_table, write_report

    md, html, findings = write_report(args.dir)
    print(claim_table(findings))
    print(f"report: {html} and {md}")
    return 0
