"""Settings every test process needs (kept generic: other suites share this file).

Ray must stay on loopback on these machines and torch must use one thread per
process on small CPUs; both are read at import time, so they are set here, before
any test module imports ray or torch. ``local_ray``: a private local Ray for one test
module (started on first use, shut down after the module). ``load_script``: a
``scripts/<name>.py`` loaded as a module of its own (its ``main`` called in-process).
"""

import importlib.util
import os
from pathlib import Path

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


@pytest.fixture(scope="session")
def load_script():
    """``load_script(name)``: ``scripts/<name>.py`` as a module of its own."""
    scripts = Path(__file__).resolve().parents[1] / "scripts"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"script_{name}", scripts / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
