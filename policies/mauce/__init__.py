"""Coordinated exploration in multi-agent bandits: MAUCE/UCVE and its baselines.

* :mod:`~policies.mauce.ve`          variable elimination (shared by all algorithms)
* :mod:`~policies.mauce.ucve`        Upper Confidence Variable Elimination
* :mod:`~policies.mauce.experience`  per-factor statistics (counts, means, posteriors)
* :mod:`~policies.mauce.policies`    MAUCE, MATS (Beta / Gaussian), LLR, SCQL, Random
* :mod:`~policies.mauce.runner`      one regret run (the ``bandit`` experiment kind's trial)
* :mod:`~policies.mauce.rllib`       MAUCE / MATS through RLlib's new API stack

Only :mod:`~policies.mauce.rllib` imports Ray.
"""

from policies.mauce.experience import FactoredExperience
from policies.mauce.policies import (
    ALGORITHMS,
    LLRPolicy,
    MATSPolicy,
    MAUCEPolicy,
    RandomPolicy,
    SCQLPolicy,
    make_policy,
)
from policies.mauce.ucve import UCVE

__all__ = [
    "ALGORITHMS",
    "UCVE",
    "FactoredExperience",
    "LLRPolicy",
    "MATSPolicy",
    "MAUCEPolicy",
    "RandomPolicy",
    "SCQLPolicy",
    "make_policy",
]
