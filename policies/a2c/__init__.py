"""Synchronous advantage actor-critic (A2C) on RLlib's new API stack.

RLlib 2.x removed A2C from its new stack; this package brings it back as a proper
algorithm: :class:`A2CConfig` (an ``AlgorithmConfig``), :class:`A2C` (an
``Algorithm`` whose ``training_step`` samples once and makes one gradient step on
the whole batch) and :class:`A2CTorchLearner` (the loss, written out).

    from policies.a2c import A2CConfig
    config = A2CConfig().environment("CartPole-v1").training(lr=7e-4)
    algo = config.build_algo()
"""

from policies.a2c.a2c import A2C, A2CConfig
from policies.a2c.a2c_torch_learner import A2CTorchLearner

__all__ = ["A2C", "A2CConfig", "A2CTorchLearner"]
