"""Settings every test process needs (kept generic: other suites share this file).

Ray must stay on loopback on these machines and torch must use one thread per
process on small CPUs; both are read at import time, so they are set here, before
any test module imports ray or torch. ``local_ray``: a private local Ray for one test
module (started on first use, shut down after the module).
"""

import os

import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="module")
def local_ray():
    """A private local Ray on loopback (2 CPUs) for the tests of one module."""
    import ray

    from policies.training import init_ray

    init_ray(None, num_cpus=2)
    yield
    ray.shutdown()
