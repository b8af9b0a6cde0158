"""LOOKING_AWAY's measure: the line of sight, judged against the student's own baseline.

The line of sight is the head's yaw plus the eyes' turn (:func:`line_of_sight`). A
student looking at their screen does not read 0°: the camera may sit beside the screen
(a laptop beside an external monitor), and the pose estimate of one face carries a bias
of its own (a face a detector pyramid level smaller moved one honest portrait from 29.9°
to 32.1°, against a 30° limit). So the rule judges the line of sight *relative to the
student's own "looking at the screen" direction* as well as from the camera's axis
(:func:`looking_away`): a look away is beyond ``yaw_limit`` from both. The baseline
excuses a steady offset; it never accuses (the camera sits on the device the student
works at, and a baseline measured on a few noisy frames - the pupil ratio of one still
photo read 0.504 and 0.559 on two frames of one chunk, 14° apart - must not narrow the
other side):

- the **baseline** is the median line of sight of the registration's camera frame
  (where the consumer has it) and of the student's first ``sight_baseline_chunks``
  chunks (30 s by default) that show one clear face that is not someone else's and
  that do not look away from the baseline so far (``RuleState.sighted``): a look at
  the start is no sample of where the screen is. The first sample always counts (the
  first chunk, without a registration frame, is judged against itself);
- it is **bounded**: clamped to ``sight_baseline_limit`` degrees off centre (15 by
  default), so a student who looks away from the start cannot train the baseline
  further than that; a look beyond ``yaw_limit + sight_baseline_limit`` (45°) is always
  one, whatever the first chunks showed, and one beyond ``yaw_limit`` (30°) on the side
  away from the baseline too. ``sight_baseline_limit: 0`` judges the absolute
  line of sight, as before.

Pitch and a gaze label without the pupil ratio (Rekognition's ``EyeDirection``) are
judged as they are: only the yaw-based line of sight has a baseline.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from proctoring.analysis.base import FaceDetail
from proctoring.analysis.gaze import gaze_direction
from proctoring.rules.policy import Policy

__all__ = ["line_of_sight", "looking_away", "sight_baseline"]


def line_of_sight(face: FaceDetail, policy: Policy) -> float | None:
    """Degrees the student looks sideways; None without a head yaw.

    Where both the head's yaw and the local pupil ratio are known, their sum: ``yaw +
    (ratio - 0.5) * yaw_limit / gaze_offset``, the pupil's offset scaled so that the
    policy's two limits mean the same turn (eyes alone at ``gaze_offset`` from the centre
    = head alone at ``yaw_limit``). A head turned one way with the eyes turned back to the
    screen is not looking away (a camera beside the screen, a portrait in three-quarter
    view); head and eyes turned the same way are. The head's yaw alone otherwise.
    """
    if face.yaw is None:
        return None
    if face.gaze_ratio is None:
        return face.yaw
    return face.yaw + (face.gaze_ratio - 0.5) * policy.yaw_limit / policy.gaze_offset


def sight_baseline(samples: Sequence[float], policy: Policy) -> float:
    """The student's "looking at the screen" direction: the samples' median, clamped to
    the policy's ``sight_baseline_limit``; 0 without samples."""
    limit = policy.sight_baseline_limit
    if not samples or limit == 0:
        return 0.0
    return max(-limit, min(limit, statistics.median(samples)))


def looking_away(face: FaceDetail, policy: Policy, baseline: float = 0.0) -> bool | None:
    """True when head or eyes turn away; None when neither pose nor gaze is known.

    The line of sight (:func:`line_of_sight`) beyond ``yaw_limit`` from the camera's axis
    and from ``baseline`` (:func:`sight_baseline`) alike; the pitch beyond ``pitch_limit``
    (off by default); without a yaw, the eyes alone (the pupil ratio off the centre by more
    than ``gaze_offset``, or the engine's gaze label).
    """
    sight = line_of_sight(face, policy)
    pitched = face.pitch is not None and policy.pitch_limit is not None
    if sight is not None and min(abs(sight), abs(sight - baseline)) > policy.yaw_limit:
        return True
    if pitched and abs(face.pitch or 0.0) > (policy.pitch_limit or 0.0):
        return True
    if face.gaze_ratio is not None and sight is not None:
        return False  # the eyes are part of the line of sight
    gaze = (
        gaze_direction(face.gaze_ratio, policy.gaze_offset)
        if face.gaze_ratio is not None
        else face.gaze
    )
    if gaze is not None:
        return gaze != "center"
    return False if sight is not None or pitched else None
