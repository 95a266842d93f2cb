"""Fixtures of the cluster tests: a running cluster (brought up if needed), API clients, and a
fresh namespace per test."""

import uuid

import pytest
from kubernetes import client, config

from cluster.harness import ensure_cluster, ensure_images, external
from cluster.kube import wait_until


@pytest.fixture(scope="session")
def kubeconfig(request):
    # Bringing the cluster up may build Kubernetes (minutes): show its progress lines.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        path = ensure_cluster()
        ensure_images("testbox")
    return path


@pytest.fixture(scope="session")
def api(kubeconfig):
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="session")
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture(scope="session")
def apps(api):
    return client.AppsV1Api(api)


@pytest.fixture(scope="session")
def batch(api):
    return client.BatchV1Api(api)


@pytest.fixture
def namespace(core):
    name = f"pmtest-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    # Pods can be created once the namespace's default service account has its token (1.20).
    wait_until(lambda: core.read_namespaced_service_account("default", name).secrets, 30,
               f"the default service account of {name}")
    yield name
    core.delete_namespace(name, grace_period_seconds=0)


@pytest.fixture
def local_cluster():
    if external():
        pytest.skip("needs the project's own test cluster (PRIVATEMODEL_TEST_CLUSTER=external)")
