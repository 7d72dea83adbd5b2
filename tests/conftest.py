import os

import pytest
from hypothesis import HealthCheck, settings

# Under CI every run explores the same examples (derandomize), so a failure is reproducible from the log.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")


@pytest.fixture(scope="session")
def torch():
    """PyTorch, or a skip where it is not installed; never a skip under CI, which installs it."""
    try:
        import torch
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("PyTorch is not installed: pip install -e '.[dev]'")
    torch.manual_seed(0)
    return torch


@pytest.fixture(scope="session")
def transformers(torch):
    try:
        import transformers
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("transformers is not installed: pip install -e '.[dev]'")
    transformers.logging.set_verbosity_error()
    return transformers
