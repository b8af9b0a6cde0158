"""``proctor register`` and ``proctor replay``: a student's face, and one student's chunks (or
many students' at once: a load test) uploaded to a running stack.

Both need ``PROCTOR_ENDPOINT_URL`` locally, as printed by ``proctor up``, or real
AWS credentials.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.base import run, settings_from
from proctoring.logs import configure_logging
from proctoring.settings import Settings

__all__ = ["register", "replay_command"]


@click.command()
@click.option("--exam", "exam_id", required=True)
@click.option("--student", "student_id", required=True)
@click.option(
    "--photo", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option(
    "--frame",
    "frames",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a frame from the student's own camera at exam start (repeat, up to 8); kept "
    "beside the photo, identity = the closest",
)
def register(exam_id: str, student_id: str, photo: Path, frames: tuple[Path, ...]) -> None:
    """Register a student's face for an exam (refuses a photo without exactly one face)."""
    from lambdas.register import register_photo

    settings = settings_from()
    configure_logging(settings)
    face = run(
        register_photo(
            settings, exam_id, student_id, photo.read_bytes(), [f.read_bytes() for f in frames]
        )
    )
    left, top, width, height = face.box
    click.echo(
        f"registered {student_id} for {exam_id}: face {width}x{height} px at {left},{top}, "
        f"{face.frames_enrolled} of {len(frames)} camera frames enrolled"
    )


@click.command("replay")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--exam", "exam_id", required=True)
@click.option("--student", "student_id", help="default: the scenario's student")
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="1 = real time; 0 = as fast as possible",
)
@click.option(
    "--register/--no-register",
    "do_register",
    default=True,
    show_default=True,
    help="register the scenario's photo first (one student only)",
)
@click.option(
    "--students",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="simulated students replaying SOURCE at once; more than 1 makes a load test",
)
@click.option(
    "--mode",
    type=click.Choice(["full", "events"]),
    default="full",
    show_default=True,
    help="load test: upload through S3 (full), or put events for pre-uploaded chunks "
    "(events: the consumer alone; run the stack without the chunk router)",
)
@click.option("--duration", type=float, help="load test: seconds per student (SOURCE cycled)")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="load test: write the JSON report here (a load test even with one student)",
)
@click.option(
    "--plot", type=click.Path(dir_okay=False, path_type=Path), help="load test: PNG plot here"
)
@click.option(
    "--within",
    type=float,
    default=120.0,
    show_default=True,
    help="load test: seconds to wait for the last results",
)
@click.option(
    "--poll-rate",
    type=float,
    default=20.0,
    show_default=True,
    help="load test: result queries per second",
)
def replay_command(
    source: Path,
    exam_id: str,
    student_id: str | None,
    speed: float,
    do_register: bool,
    students: int,
    mode: str,
    duration: float | None,
    report: Path | None,
    plot: Path | None,
    within: float,
    poll_rate: float,
) -> None:
    """Upload a recording or a scenario file as one student's 5 s chunks, or as many students'.

    With --students N (or --report) it is a load test: it waits for the results and
    prints throughput, latency percentiles, alerts, throttles and errors.
    """
    settings = settings_from()
    configure_logging(settings)
    if students > 1 or report is not None or plot is not None:
        _load(
            settings,
            source,
            exam_id,
            students,
            speed,
            mode,
            duration,
            report,
            plot,
            within,
            poll_rate,
        )
        return
    from producer.cli import replay_source

    uploaded = run(
        replay_source(
            settings,
            source,
            exam_id=exam_id,
            student_id=student_id,
            speed=speed or None,
            do_register=do_register,
        )
    )
    click.echo(f"uploaded {len(uploaded)} chunks")


def _load(
    settings: Settings,
    source: Path,
    exam_id: str,
    students: int,
    speed: float,
    mode: str,
    duration: float | None,
    report_path: Path | None,
    plot: Path | None,
    within: float,
    poll_rate: float,
) -> None:
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    from producer.cli import load_source
    from producer.load import Progress, plot_report

    with Bars(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        transient=False,
    ) as bars:
        created = bars.add_task("chunks created", total=None, note="")
        written = bars.add_task("results written", total=None, note="")

        def show(progress: Progress) -> None:
            bars.update(created, total=progress.planned, completed=progress.created)
            bars.update(
                written,
                total=progress.planned,
                completed=progress.results,
                note=f"alerts {progress.alerts}, errors {progress.errors}",
            )

        outcome = run(
            load_source(
                settings,
                source,
                students=students,
                exam_id=exam_id,
                speed=speed or None,
                duration=duration,
                mode=mode,  # type: ignore[arg-type]
                within=within,
                poll_rate=poll_rate,
                on_progress=show,
            )
        )
    summary = outcome.to_dict(timeline=True)
    latency = summary["latency_ms"]
    click.echo(
        f"{summary['chunks']['results']} of {summary['chunks']['planned']} chunks have results "
        f"({summary['chunks']['missing']} missing); "
        f"{summary['throughput']['results_per_second']} results/s"
    )
    for name, values in latency.items():
        click.echo(
            f"{name}: p50 {values['p50']} ms, p90 {values['p90']} ms, p99 {values['p99']} ms "
            f"(n={values['count']})"
        )
    stages = summary["breakdown"]["percentiles_ms"]
    click.echo(
        "per stage p50/p95/p99 ms: "
        + ", ".join(
            f"{name} {v['p50']}/{v['p95']}/{v['p99']}" for name, v in stages.items() if v["count"]
        )
    )
    click.echo(
        f"lag flat: {summary['lag']['flat']} ({summary['lag']['reason']}); alerts "
        f"{summary['alerts']['delivered']}; throttles {summary['throttles'] or 0}; "
        f"errors {summary['errors'] or 0}"
    )
    if report_path is not None:
        report_path.write_text(json.dumps(summary, indent=2) + "\n")
        click.echo(f"report written to {report_path}")
    if plot is not None:
        plot_report(outcome, plot)
        click.echo(f"plot written to {plot}")
