"""``proctor metrics``: EMF metric lines aggregated into a table (or JSON)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["metrics_command"]


@click.command("metrics")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="print the aggregates as JSON")
def metrics_command(files: tuple[Path, ...], as_json: bool) -> None:
    """Aggregate EMF metric lines (proctor up --metrics-file, the demo's .metrics.jsonl).

    Counts are summed; timings get p50/p90/p99/max, per service and dimensions.
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from proctoring.metrics_view import aggregate

    lines = [line for path in files for line in path.read_text().splitlines()]
    rows = [series.summary() for series in aggregate(lines)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("service", "metric", "dimensions", "unit", "samples", "sum", "p50", "p99", "max")
    for row in rows:
        dims = dict(row["dimensions"])  # type: ignore[call-overload]
        service = dims.pop("Service", "")
        table.add_row(
            service,
            str(row["metric"]),
            ", ".join(f"{k}={v}" for k, v in dims.items()),
            str(row["unit"]),
            str(row["samples"]),
            f"{row['sum']:g}",
            *(str(row.get(k, "")) for k in ("p50", "p99", "max")),
        )
    Console(width=140).print(table)
