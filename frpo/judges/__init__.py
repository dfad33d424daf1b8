"""Judges: score (prompt, completion) pairs behind one interface (`frpo.judges.base.Judge`)."""

from frpo.judges.base import Judge, JudgeError

__all__ = ["Judge", "JudgeError"]

# Paper-profile judges (heavy imports stay lazy: transformers loads only when a class is used).
from frpo.judges._http import Endpoint  # noqa: E402
from frpo.judges.api import ModerationJudge, StrongRejectRubricJudge  # noqa: E402

__all__ += ["Endpoint", "ModerationJudge", "StrongRejectRubricJudge"]
