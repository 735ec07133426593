"""Hand-written policies usable in any PettingZoo loop (numpy only, no Ray import).

* :mod:`policies.heuristics.schedulers` - FIFO, SJF, Packer, Tetris and DRF for
  ``marl_envs.resource_allocation_v0``.
* :mod:`policies.heuristics.recommenders` - random live, most popular live, the user's
  most-watched live streamer and the oracle for ``marl_envs.live_recommendation_v0``.
"""
