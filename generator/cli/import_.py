"""`flowpol import`: any supported input -> one aggregated flow log."""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, Optional

import typer

from generator.cli.common import Jobs, Strict, jobs
from recorder.aggregate import Aggregator, AggregateStats
from recorder.errors import InputError, UsageError
from recorder.flowlog import write_flow_log
from recorder.report import ReadReport
from recorder.schema import FlowLogHeader, LogRecord
from recorder.sources import ReadOptions
from recorder.timefmt import parse_duration

_PROGRESS_EVERY = 1_000


def parse_window(text: str, option: str = "--window") -> int:
    try:
        ns = parse_duration(text)
    except ValueError as e:
        raise UsageError(f"{option}: {e}") from None
    if ns <= 0:
        raise UsageError(f"{option} must be longer than 0, e.g. 60s")
    return ns


def _with_progress(records: Iterable[LogRecord], label: str) -> Iterator[LogRecord]:
    """Records unchanged; a live counter on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        yield from records
        return
    try:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn
    except ImportError:  # typer without rich: no progress, same records
        yield from records
        return

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}: {task.completed:,} records"),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=None)
        n = 0
        for rec in records:
            n += 1
            if n % _PROGRESS_EVERY == 0:
                progress.update(task, completed=n)
            yield rec


def render_summary(
    report: ReadReport, stats: AggregateStats, errors: list[InputError], window_ns: int
) -> str:
    out: list[str] = []
    data = report.to_dict()
    for path, info in data["inputs"].items():
        out.append(
            f"  {path}: {info['format']}, {info['read']:,} lines read, {info['kept']:,} records kept"
        )
    for e in errors:
        out.append(f"  error: {e}")
    if report.skipped:
        out.append(
            f"skipped {report.total_skipped:,} bad items: "
            + ", ".join(f"{reason} {n:,}" for reason, n in data["skipped"].items())
        )
        out.extend(f"  {example}" for example in data["examples"])
    if report.ignored:
        out.append(
            "ignored (not a new connection, or not wanted): "
            + ", ".join(f"{reason} {n:,}" for reason, n in data["ignored"].items())
        )
    out.append(
        f"aggregated {stats.seen:,} flow records into {stats.emitted:,} "
        f"(window {window_ns / 1e9:g}s; {stats.duplicates:,} repeated observations "
        f"of a counted connection merged)"
        + (f"; {stats.ip_records:,} IP timeline records" if stats.ip_records else "")
    )
    if stats.dropped:
        out.append(
            f"left out {stats.dropped:,} dropped connections (a DROPPED or ERROR verdict "
            "on any of their observations; --include-dropped keeps them)"
        )
    if stats.overflow:
        out.append(
            f"warning: {stats.overflow:,} flow records were dropped because the aggregation "
            "table was full; use a longer --window or split the input"
        )
    return "\n".join(out)


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_command(
        inputs: list[str] = typer.Argument(
            ..., metavar="INPUT...", help="Files or directories of flows (format detected)."
        ),
        output: str = typer.Option(
            ..., "-o", "--output", metavar="FLOWLOG",
            help="Flow log to write (.gz = gzip, - = stdout).",
        ),
        fmt: Optional[str] = typer.Option(
            None, "--format", help="Force the input format (hubble, flowlog, ...)."
        ),
        include_dropped: bool = typer.Option(
            False, "--include-dropped", help="Keep connections with a DROPPED/ERROR verdict (Hubble)."
        ),
        strict: Strict = False,
        window: str = typer.Option("60s", "--window", help="Aggregation window, e.g. 60s, 5m."),
        workers: Jobs = None,
    ) -> None:
        """Normalise any supported input into a flowpol flow log."""
        # imported here: the pipeline brings pandas, which the other commands (the
        # recorder agent's among them) should not pay for at start-up
        from generator.pipeline import raise_for_bad_input, read_into

        window_ns = parse_window(window)
        report = ReadReport(strict=strict)
        aggregator = Aggregator(window_ns=window_ns, include_dropped=include_dropped)
        errors = read_into(
            aggregator, inputs, report, ReadOptions(include_dropped=include_dropped), fmt,
            wrap=_with_progress, jobs=jobs(workers),
        )
        written = write_flow_log(aggregator.drain(), output, FlowLogHeader())
        typer.echo(render_summary(report, aggregator.stats, errors, window_ns), err=True)
        typer.echo(f"wrote {written:,} records to {output}", err=True)
        raise_for_bad_input(report, errors,
                            "the flow log on stdout" if output == "-" else f"the flow log {output}")
