"""Core of the hybrid remote proctoring service, shared by every deployable.

Events, settings, the AWS client factory, storage, frame extraction, analysis
and rules live here; ``consumer``, ``producer``, ``lambdas``,
``infrastructure`` and ``dashboard`` build on them.
"""

__version__ = "0.1.0"
