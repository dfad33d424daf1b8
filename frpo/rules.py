"""The rules a claim part is judged by (:mod:`frpo.claims`): each says on which side of its
threshold(s) the claim holds, and turns a 95% interval into a verdict: ``reproduced`` when the
whole interval lies on the claim's side, ``contradicted`` when it lies wholly on the other side,
``inconclusive`` when it straddles."""

from __future__ import annotations

from dataclasses import dataclass

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"


@dataclass(frozen=True)
class Above:
    """Holds when the quantity is above ``threshold``."""

    threshold: float

    def holds(self, x: float) -> bool:
        return x > self.threshold

    def on_interval(self, lo: float, hi: float) -> str:
        """The verdict of an interval ``[lo, hi]``: all above, all at or below, or straddling."""
        if lo > self.threshold:
            return REPRODUCED
        return CONTRADICTED if hi <= self.threshold else INCONCLUSIVE

    def margin(self, x: float) -> float:
        """Signed distance from the threshold, positive on the claim's side."""
        return x - self.threshold

    def thresholds(self) -> tuple[float, ...]:
        return (self.threshold,)

    def describe(self) -> str:
        return f"> {self.threshold:g}"


@dataclass(frozen=True)
class Below:
    """Holds when the quantity is below ``threshold``."""

    threshold: float

    def holds(self, x: float) -> bool:
        return x < self.threshold

    def on_interval(self, lo: float, hi: float) -> str:
        if hi < self.threshold:
            return REPRODUCED
        return CONTRADICTED if lo >= self.threshold else INCONCLUSIVE

    def margin(self, x: float) -> float:
        return self.threshold - x

    def thresholds(self) -> tuple[float, ...]:
        return (self.threshold,)

    def describe(self) -> str:
        return f"< {self.threshold:g}"


@dataclass(frozen=True)
class Between:
    """Holds when the quantity is strictly between ``lo`` and ``hi``."""

    lo: float
    hi: float

    def holds(self, x: float) -> bool:
        return self.lo < x < self.hi

    def on_interval(self, lo: float, hi: float) -> str:
        inside = self.lo < lo and hi < self.hi
        outside = hi <= self.lo or lo >= self.hi
        return REPRODUCED if inside else CONTRADICTED if outside else INCONCLUSIVE

    def margin(self, x: float) -> float:
        return min(x - self.lo, self.hi - x)

    def thresholds(self) -> tuple[float, ...]:
        return (self.lo, self.hi)

    def describe(self) -> str:
        return f"in ({self.lo:g}, {self.hi:g})"


@dataclass(frozen=True)
class InTarget:
    """Holds when the value lies in the evidence's predicted ``target`` range (C4): reproduced
    when the whole interval lies inside the range, contradicted when it lies wholly outside."""

    def describe(self) -> str:
        return "inside the predicted range"

    def thresholds(self) -> tuple[float, ...]:
        return ()


Rule = Above | Below | Between | InTarget
