"""The review report (report.md, report.html) and the evidence it shows."""
