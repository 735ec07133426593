"""Settings every test process needs (kept generic: other suites share this file).

Ray must stay on loopback on these machines and torch must use one thread per
process on small CPUs; both are read at import time, so they are set here, before
any test module imports ray or torch.
"""

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
