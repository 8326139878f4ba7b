"""A local Ray cluster for the module's tests (``num_cpus=2``, started and stopped here), an
empty weights cache it and the driver share, and the face tests' tiny restorer and GFP-GAN."""
from __future__ import annotations

import pytest
import ray  # the ray extra; make install has it

from tests.restore.faces.conftest import gfpgan_calls, gfpgan_weights, weights  # noqa: F401 - the face models' fixtures



@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def empty_cache(cache, monkeypatch):
    """The driver's weights cache is the cluster's: MTCNN and the given models only."""
    monkeypatch.setenv("RESTORE_HOME", str(cache))


@pytest.fixture(scope="session")
def cluster(cache):
    """This machine as a 2-CPU Ray cluster; yields its address (for a second driver to join)."""
    import logging

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, runtime_env={"env_vars": {"RESTORE_HOME": str(cache)}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
