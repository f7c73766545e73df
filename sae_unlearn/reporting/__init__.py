"""The run report and the comparison of experiments.

A report is built as plain data, section by section (`sections/`), and rendered from the
jinja2 templates in `templates/` twice: to Markdown (figures linked as files) and to one
self-contained HTML file (figures inlined as data URIs, so it opens offline and can be
mailed). Both renderings come from the same data, so they always carry the same numbers.
The data behind every plot is also written as CSV so DVC can draw the same plots.

This package knows nothing of DVC or params.yaml: the `report` and `compare` commands
read the files and pass their contents in.
"""

from sae_unlearn.reporting.compare import Experiment, write_comparison
from sae_unlearn.reporting.constants import PAPER_MODEL
from sae_unlearn.reporting.format import flatten
from sae_unlearn.reporting.inputs import ReportInputs, ReportOptions
from sae_unlearn.reporting.report import write_report

__all__ = [
    "PAPER_MODEL",
    "Experiment",
    "ReportInputs",
    "ReportOptions",
    "flatten",
    "write_comparison",
    "write_report",
]
