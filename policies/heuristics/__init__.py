"""Hand-written policies usable in any PettingZoo loop (numpy only, no Ray import).

* :mod:`policies.heuristics.schedulers` - FIFO, SJF, Packer, Tetris and DRF for
  ``marl_envs.resource_allocation_v0``.
"""
