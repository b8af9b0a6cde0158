"""The labelled suite of ``proctor eval``: which scenarios, and the incidents a proctor should
be alerted to in each (rule, start and end in seconds). Scoring them is ``cli.evaluation``.

Errors::

    ProctoringError
     └── SuiteError          the suite file is missing or malformed
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from proctoring.errors import ProctoringError
from proctoring.rules import RULE_NAMES
from proctoring.rules.policy import SPEECH_RULES

__all__ = ["Incident", "Suite", "SuiteEntry", "SuiteError", "load_suite"]


class SuiteError(ProctoringError):
    """The evaluation suite cannot be used."""


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str
    start: float = Field(ge=0)
    end: float = Field(gt=0)

    @field_validator("rule")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in RULE_NAMES + SPEECH_RULES:
            known = list(RULE_NAMES + SPEECH_RULES)
            raise ValueError(f"unknown rule {value!r}; known: {known}")
        return value


class SuiteEntry(BaseModel):
    """One labelled session: a scenario ``file`` (relative to the suite) or an inline
    ``scenario`` (the content of such a file) with its ``name``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path | None = None
    scenario: dict[str, Any] | None = None
    name: str | None = None
    register_frame: Path | None = None
    enrol_frames: bool = False
    """Enrol camera frames of the session's start beside the photo (the student page's
    three camera views)."""
    person: str | None = None
    """Who the student is (``producer.people``), for breakdowns by person and group."""
    groups: tuple[str, ...] = ()
    incidents: tuple[Incident, ...] = ()

    @model_validator(mode="after")
    def _one_source(self) -> SuiteEntry:
        if (self.file is None) == (self.scenario is None):
            raise ValueError("an entry needs exactly one of 'file' or 'scenario'")
        if self.scenario is not None and not self.name:
            raise ValueError("an inline scenario needs a 'name'")
        return self

    @property
    def label(self) -> str:
        """The session's name: ``name``, or the scenario file's stem."""
        return self.name or (self.file.stem if self.file is not None else "")


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scenarios: tuple[SuiteEntry, ...] = Field(min_length=1)
    folder: Path = Path()


def load_suite(path: Path) -> Suite:
    """Read a suite; scenario files resolve against the suite's folder."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SuiteError(f"{path}: cannot read the suite: {exc}") from exc
    try:
        suite = Suite.model_validate({**(raw or {}), "folder": path.parent.resolve()})
    except ValidationError as exc:
        raise SuiteError(f"{path}: {exc}") from exc
    for entry in suite.scenarios:
        if entry.file is not None and not (suite.folder / entry.file).is_file():
            raise SuiteError(f"{path}: scenario {entry.file} not found")
    names = [entry.label for entry in suite.scenarios]
    if len(set(names)) != len(names):
        raise SuiteError(f"{path}: two sessions have the same name")
    return suite
