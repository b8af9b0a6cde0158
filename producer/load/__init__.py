"""Load replay: many simulated students at once, and what the pipeline made of them.

Every student replays the same session (a recording or a scenario, cycled to
``duration`` seconds), each shifted by a fraction of a chunk so the load is
smooth, in real time or ``speed`` times faster. Two modes:

- ``full``: each chunk is PUT to the chunks bucket when it is due; the S3
  notification, the chunk router and Kinesis carry it to the consumer (the
  deployed path);
- ``events``: every chunk is uploaded first (not timed), then each is
  announced when due by putting its chunk event on the stream (``PutRecords``,
  batched): the consumer alone is measured. The chunk router must not run
  meanwhile (``proctor up --no-router``; in AWS, disable its event source).

A chunk is *created* when it is due: the moment a real student's recorder
would hand it over. The run measures, per chunk, created -> result row
written (the row's ``processed_at``) and, per alert, created (its raising
chunk) -> delivered on the alerts queue (SNS -> SQS, what a proctor's screen
follows). Result rows are followed with incremental queries, at most
``poll_rate`` per second, so watching costs the stack little.

:func:`run_load` returns a :class:`LoadReport`; :func:`plot_report` draws it
(PNG, matplotlib from the ``load`` extra). The package is the API; its modules
are one concern each: the plan (``_plan``), the run's driver (``_driver``), the
collectors of results and alerts (``_collect``), the report and its statistics
(``_report``) and the plot (``_plot``).

Errors::

    ProctoringError
     └── LoadError          the run cannot start (no chunks, bad parameters)
"""

from producer.load._driver import run_load
from producer.load._plan import LoadError, LoadPlan, Mode, Progress
from producer.load._plot import plot_report
from producer.load._report import LoadReport

__all__ = ["LoadError", "LoadPlan", "LoadReport", "Mode", "Progress", "plot_report", "run_load"]
