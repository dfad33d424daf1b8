"""Judges: score (prompt, completion) pairs behind one interface (`frpo.judges.base.Judge`)."""

from frpo.judges.base import Judge, JudgeError

__all__ = ["Judge", "JudgeError"]
