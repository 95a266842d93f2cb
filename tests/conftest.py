import os
from pathlib import Path

import pytest

# Tests read the project's own log lines; TensorFlow's C++ start-up chatter is noise here.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Each directory of tests is one layer (a pytest marker; `make test-LAYER` runs one). A test may
# name its layer itself, e.g. a unit test that runs SecureNN in-process is marked engine.
# Benchmarks that need a layer's fixtures live beside its tests as bench_*.py: pytest collects only
# test_*.py, so no layer runs them; they run when named (tests/e2e/bench_scaleout.py: make bench-cluster).
LAYER_OF_DIRECTORY = {
    "unit": "unit",  # pure logic, no processes: seconds
    "integration": "engine",  # real players on this machine
    "faults": "engine",
    "cluster": "cluster",  # the test cluster itself
    "e2e": "e2e",  # the operator on the test cluster
}
TESTS = Path(__file__).parent
# The reference CNN, trained once per checkout (training is seeded) for every layer's tests.
REFERENCE_MODEL = TESTS.parent / "build" / "test-models" / "reference-cnn.h5"


@pytest.fixture(scope="session")
def reference_model_path():
    from privatemodel.runtime import reference

    return reference.trained_model_path(REFERENCE_MODEL)


def pytest_collection_modifyitems(config, items):
    for item in items:
        directory = Path(item.fspath).relative_to(TESTS).parts[0]
        if directory not in LAYER_OF_DIRECTORY:
            raise pytest.UsageError(f"{item.nodeid}: tests/{directory} has no layer; add it to LAYER_OF_DIRECTORY")
        if not any(item.get_closest_marker(layer) for layer in set(LAYER_OF_DIRECTORY.values())):
            item.add_marker(LAYER_OF_DIRECTORY[directory])
