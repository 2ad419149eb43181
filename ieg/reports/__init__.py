"""What a finished (or running) run shows a person: plots, TensorBoard images and the detection report.

`detection` scores how well per-example scores find the mislabelled examples (numpy only);
`writer` draws the plots and writes `<run>/plots/`, `<run>/report` and `<run>/detection/`.
"""
from ieg.reports.writer import WriteReports, report_from_checkpoint, summary_line, write_full_report

__all__ = ["WriteReports", "report_from_checkpoint", "summary_line", "write_full_report"]
