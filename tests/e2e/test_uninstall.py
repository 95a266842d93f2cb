"""helm uninstall removes the operator; it runs last (file order), after every model is gone."""
from e2e.conftest import OPERATOR_NAMESPACE, RELEASE, operator_pods
from e2e.support import helm, wait_until


def test_helm_uninstall_removes_the_operator(kubeconfig, core, apps, operator):
    helm(kubeconfig, "uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--wait")
    assert not apps.list_namespaced_deployment(OPERATOR_NAMESPACE).items
    wait_until(lambda: not operator_pods(core), 60, "the operator pod gone")
    assert not core.list_namespaced_service_account(
        OPERATOR_NAMESPACE, label_selector=f"app.kubernetes.io/instance={RELEASE}").items
