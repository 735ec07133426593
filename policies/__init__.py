"""Everything that learns or decides: RLlib adapters, algorithm configs, training loops.

Importing this package does not import Ray; the submodules do (``rllib_env``,
``config``, ``callbacks``, ``training``, ``a2c``).
"""
