"""structlog configuration: JSON in production, readable on a terminal.

Logs go to stderr; stdout stays free for metrics (EMF) and reports. Context
(exam, student, shard, sequence) is bound per unit of work with
``structlog.contextvars.bound_contextvars``. Never log a face embedding, a
photo or a frame: biometric data stays out of logs.
"""

from __future__ import annotations

import logging
import sys

import structlog

from proctoring.settings import Settings

__all__ = ["configure_logging"]


def configure_logging(settings: Settings, *, stream: object = None) -> None:
    """Configure structlog and the standard library's logging once, at the edge."""
    out = stream or sys.stderr
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "console" if getattr(out, "isatty", lambda: False)() else "json"
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    level = getattr(logging, settings.log_level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(level, logging.WARNING), stream=out)  # type: ignore[arg-type]
