"""``proctor eval``: the labelled suites through the pipeline (cli.eval_run, cli.eval_speech)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from cli.base import run, settings_from
from proctoring.logs import configure_logging

__all__ = ["eval_command"]


@click.command("eval")
@click.option(
    "--suite",
    "suite_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a labelled suite file (e.g. producer/scenarios/eval/suite.yaml, the hand-written "
    "one); default: five sessions per person of producer/people.py, one half",
)
@click.option(
    "--half",
    type=click.Choice(["test", "development", "all"]),
    default="test",
    show_default=True,
    help="which people the default suite takes: thresholds are chosen on the development "
    "half, figures reported on the test half",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also write the figures to this JSON file",
)
@click.option(
    "--speech",
    is_flag=True,
    help="the speech suite instead (TALKING: the voice activity detector and the rule on "
    "chunks with a microphone, threshold chosen on its development half, figures on its "
    "test half; producer/speech_suite.py)",
)
@click.option("--port", type=int)
def eval_command(
    suite_path: Path | None,
    half: Literal["test", "development", "all"],
    json_path: Path | None,
    speech: bool,
    port: int | None,
) -> None:
    """Run the labelled scenarios through the pipeline: precision, recall, false alerts, cost."""
    from cli.eval_run import people_suite, run_eval
    from cli.eval_suite import load_suite

    settings = settings_from(port=port, prefix="eval", log_level="ERROR")
    configure_logging(settings)
    if speech:
        from cli.eval_speech import run_speech_eval
        from consumer.wiring import cpu_pool

        with cpu_pool(settings) as pool:
            run(run_speech_eval(settings.data_dir, pool, json_path=json_path, out=click.echo))
        return
    suite = load_suite(suite_path) if suite_path else people_suite(half, settings.data_dir)
    run(run_eval(settings, suite, json_path=json_path, out=click.echo))
