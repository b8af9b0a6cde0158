"""``proctor demo``: the local stack and four exam sessions replayed, live on the terminal and
the proctor console."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.base import run, settings_from

__all__ = ["demo"]


@click.command()
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="run these scenario files instead of the built-in four (repeatable)",
)
@click.option("--exit-when-done", is_flag=True, help="exit once every chunk has its result")
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), help="write the JSON report here"
)
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="replay speed; 1 = real time, 0 = as fast as possible",
)
@click.option("--port", type=int)
@click.option("--api-port", type=int, help="the console's server port (default: a free one)")
@click.option(
    "--open/--no-open",
    "open_browser",
    default=None,
    help="open the proctor console in a browser (default: on a terminal, unless --exit-when-done)",
)
def demo(
    scenarios: tuple[Path, ...],
    exit_when_done: bool,
    report: Path | None,
    speed: float,
    port: int | None,
    api_port: int | None,
    open_browser: bool | None,
) -> None:
    """Start the local stack and replay exam sessions; students and alerts live, on the
    terminal and on the proctor console (its signed-in link is printed)."""
    from cli.demo import run_demo

    settings = settings_from(port=port, api_port=api_port, prefix="demo")
    if open_browser is None:
        open_browser = not exit_when_done and sys.stderr.isatty()
    run(
        run_demo(
            settings,
            scenarios=list(scenarios) or None,
            speed=speed or None,
            exit_when_done=exit_when_done,
            report=report,
            open_browser=open_browser,
        )
    )
