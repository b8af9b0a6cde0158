"""Proctoring rules and policy: pure functions from observations and state to incidents.

See :mod:`proctoring.rules.evaluate` for the rules and
:mod:`proctoring.rules.policy` for per-exam policy and per-student
accommodations.
"""

from __future__ import annotations

from proctoring.analysis.base import Identity
from proctoring.rules.evaluate import (
    RULES,
    Finding,
    Observation,
    RuleState,
    alert_id,
    alert_item,
    evaluate,
    face_clear,
    looking_away,
    main_face,
    risk_score,
    unavailable_rules,
)
from proctoring.rules.policy import (
    OBJECT_RULES,
    POLICY_STUDENT_ID,
    RULE_NAMES,
    Accommodations,
    Policy,
    PolicyError,
    Severity,
)

__all__ = [
    "OBJECT_RULES",
    "POLICY_STUDENT_ID",
    "RULES",
    "RULE_NAMES",
    "Accommodations",
    "Finding",
    "Identity",
    "Observation",
    "Policy",
    "PolicyError",
    "RuleState",
    "Severity",
    "alert_id",
    "alert_item",
    "evaluate",
    "face_clear",
    "looking_away",
    "main_face",
    "risk_score",
    "unavailable_rules",
]
