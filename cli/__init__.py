"""The ``proctor`` command: the local stack, registration, replay, the consumer and the demo.

This module assembles the command from ``cli.commands`` (one module per group of
commands); ``cli.base`` holds what they share (settings from the options, one-line
errors). Commands that talk to an existing stack (``register``, ``replay``,
``consume``) need ``PROCTOR_ENDPOINT_URL`` locally, as printed by ``proctor up``,
or real AWS credentials.
"""

from __future__ import annotations

import click

from cli.commands.demo import demo
from cli.commands.evaluate import eval_command
from cli.commands.metrics import metrics_command
from cli.commands.parked import parked
from cli.commands.stack import consume, route, serve, up
from cli.commands.students import register, replay_command

__all__ = ["main"]


@click.group()
@click.version_option(package_name="hybrid-proctoring")
def main() -> None:
    """Hybrid remote proctoring: chunks -> Kinesis -> face analysis -> results and alerts."""


for _command in (
    up,
    serve,
    consume,
    route,
    parked,
    register,
    replay_command,
    demo,
    metrics_command,
    eval_command,
):
    main.add_command(_command)
