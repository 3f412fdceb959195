"""`flowpol import`: any supported input -> one aggregated flow log."""

from __future__ import annotations


import typer

from generator.cli.command import FlowpolCommand
from generator.cli.common import (
    OLD_OUT_SPELLINGS, FlowInputs, InputFormat, Jobs, Strict, jobs, parse_duration,
    reading_progress, say,
)
from recorder.aggregate import Aggregator, AggregateStats
from recorder.errors import InputError
from recorder.flowlog import write_flow_log
from recorder.report import ReadReport, item_unit
from recorder.schema import FlowLogHeader
from recorder.sources import ReadOptions


def summary_lines(
    report: ReadReport, stats: AggregateStats, errors: list[InputError], window_ns: int
) -> list[str]:
    out: list[str] = []
    data = report.to_dict()
    for path, info in data["inputs"].items():
        unit = item_unit(info["format"]) + ("" if info["read"] == 1 else "s")
        out.append(f"  {path}: {info['format']}, {info['read']:,} {unit} read, "
                   f"{info['kept']:,} records kept")
    for e in errors:
        out.append(f"  error: {e}")
    out += [f"warning: {w}" for w in report.warnings]
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
    if report.noted:
        out.append("noted: " + ", ".join(f"{what} {n:,}" for what, n in data["noted"].items()))
    out.append(
        f"aggregated {stats.seen:,} flow records into {stats.emitted:,} "
        f"(window {window_ns / 1e9:g}s; {stats.duplicates:,} repeated observations "
        f"of a counted connection merged)"
        + (f"; {stats.ip_records:,} IP timeline records" if stats.ip_records else "")
        + (f"; {stats.name_records:,} DNS name records into "
           f"{stats.name_records_emitted:,}" if stats.name_records else "")
    )
    if stats.name_overflow:
        out.append(
            f"warning: {stats.name_overflow:,} DNS name records were dropped because the "
            "aggregation table was full; use a longer --window or split the input"
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
    return out


def register(app: typer.Typer) -> None:
    app.command("import", cls=FlowpolCommand.with_aliases(OLD_OUT_SPELLINGS))(import_command)


def import_command(
    inputs: FlowInputs,
    out: str = typer.Option(..., "--out", metavar="FLOWLOG",
                            help="Flow log to write (.gz = gzip, - = stdout)."),
    fmt: InputFormat = None,
    include_dropped: bool = typer.Option(
        False, "--include-dropped",
        help="Keep connections with a DROPPED/ERROR verdict (Hubble)."),
    strict: Strict = False,
    window: str = typer.Option("60s", "--window", metavar="DURATION",
                               help="Aggregation window, e.g. 60s, 5m."),
    workers: Jobs = None,
    part: str = typer.Option(
        None, "--part", metavar="K/N",
        help="Import only part K (from 0) of N disjoint shares of the input files, e.g. "
             "each pod of a Kubernetes Indexed Job its JOB_COMPLETION_INDEX; then "
             "`flowpol generate` reads the N flow logs."),
) -> None:
    """Normalise any supported input into a flowpol flow log."""
    # imported here: the pipeline brings pandas, which the other commands (the
    # recorder agent's among them) should not pay for at start-up
    from generator.output.files import note_written
    from generator.pipeline import collector_paused, raise_for_bad_input, read_into

    window_ns = parse_duration(window, "--window")
    report = ReadReport(strict=strict)
    share = None
    if part is not None:
        from generator.cli.parts import parse_part, select_part

        share = select_part(inputs, parse_part(part), report)
        inputs = share.files
    aggregator = Aggregator(window_ns=window_ns, include_dropped=include_dropped)
    # collector_paused: the aggregates, their keys and the dedup table make no cycles,
    # and the collector walking them again and again was a quarter of an import.
    # listed_batches: rows instead of a record per line (recorder.listed), from the
    # readers here or in the worker processes, which pass them on as they are.
    with collector_paused():
        with reading_progress(inputs) as watcher:
            errors = read_into(aggregator, inputs, report,
                               ReadOptions(include_dropped=include_dropped, watcher=watcher,
                                           listed_batches=True), fmt, jobs=jobs(workers))
        written = write_flow_log(aggregator.drain_lines(), out, FlowLogHeader())
    if out != "-":
        note_written(out)
    if share is not None:
        say([f"part {part.strip()}: {len(share.files):,} of {share.total:,} input file(s)"],
            err=True)
    say(summary_lines(report, aggregator.stats, errors, window_ns)
        + [f"wrote {written:,} records to {out}"], err=True)
    raise_for_bad_input(report, errors,
                        "the flow log on stdout" if out == "-" else f"the flow log {out}")
