"""`helm upgrade` of the operator while a model serves: a new operator pod takes over the model as
it is (same players, same shares, same serving), without sharing again."""
import numpy as np

from e2e.conftest import OPERATOR_NAMESPACE, RELEASE, operator_pods
from e2e.support import (
    IMAGE_TAG,
    REPO,
    apply_model,
    create_model_secret,
    helm,
    operator_metrics,
    predict_in_cluster,
    wait_until,
    wait_until_serving,
)

MODEL = "upgraded"


def test_helm_upgrade_keeps_a_serving_model_serving_without_sharing_again(
        kubeconfig, namespace, core, apps, custom, operator, reference_model):
    create_model_secret(kubeconfig, namespace, "upgraded-model", reference_model["path"])
    apply_model(kubeconfig, namespace, MODEL, "upgraded-model")
    before, _ = wait_until_serving(custom, namespace, MODEL, timeout=400)
    (old_operator,) = operator_pods(core)
    generations = {s.metadata.name: s.metadata.generation for s in apps.list_namespaced_stateful_set(namespace).items}

    # A changed value rolls the operator's pod, as a new chart version would.
    helm(kubeconfig, "upgrade", RELEASE, str(REPO / "charts" / "privatemodel"), "--namespace", OPERATOR_NAMESPACE,
         "--reuse-values", "--wait", "--timeout", "180s", "--set", "operator.verbose=true",
         "--set", f"operator.image.tag={IMAGE_TAG}")
    wait_until(lambda: [p for p in operator_pods(core) if p.metadata.uid != old_operator.metadata.uid
                        and p.status.phase == "Running"], 120, "the upgraded operator pod")
    # The new operator has reconciled the model (its own metrics count it Serving) and changed nothing.
    wait_until(lambda: operator_metrics(core, namespace).get('privatemodel_operator_models{phase="Serving"}', 0) >= 1,
               120, "the new operator counting the model Serving", interval=5)
    after, _ = wait_until_serving(custom, namespace, MODEL, timeout=60)
    for field in ("sharedDigest", "sharedPlayerUIDs", "sharingJob", "tls"):
        assert after["status"][field] == before["status"][field], field
    assert {s.metadata.name: s.metadata.generation
            for s in apps.list_namespaced_stateful_set(namespace).items} == generations
    logits = predict_in_cluster(core, namespace, MODEL, reference_model["x"][:1])
    assert (logits.argmax(axis=1) == np.asarray(reference_model["plaintext"][:1]).argmax(axis=1)).all()
