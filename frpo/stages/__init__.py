"""Stage runners: RLHF (GRPO / FRPO / GRPO+SAM), downstream SFT and RL, evaluation, sweeps.

Every run is described by a frozen spec (:mod:`frpo.stages.spec`) and lives in its own run
directory under ``runs/<profile>/`` (:mod:`frpo.stages.rundir`), written atomically and skipped
when complete. The same code runs the toy world and the real models (:mod:`frpo.stages.sources`).
"""

from frpo.stages.spec import EvalSpec, RLSpec, SFTSpec, Source, Track, from_dict, to_dict

__all__ = ["EvalSpec", "RLSpec", "SFTSpec", "Source", "Track", "from_dict", "to_dict"]
