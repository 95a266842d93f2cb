"""What the e2e tests do as a user would: kubectl, helm, a client pod running `privatemodel predict`."""
import base64
import io
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
from kubernetes.client.exceptions import ApiException

from cluster import kube
from cluster.kube import pod_log
from privatemodel import contract
from privatemodel.controller import consts
from privatemodel.controller.consts import Component
from privatemodel.controller.naming import child_name

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "build" / "bin"
EXAMPLE = REPO / "examples" / "mnist-privatemodel.yaml"
# images.sh tags with $IMAGE_TAG (default dev, as the chart): another tag keeps a run's images
# apart from another worktree's on the same machine.
IMAGE_TAG = os.environ.get("IMAGE_TAG", "dev")
RUNTIME_IMAGE = f"{consts.DEFAULT_RUNTIME_IMAGE.rsplit(':', 1)[0]}:{IMAGE_TAG}"
# Every kind a PrivateModel's children (and their own children) can be.
CHILD_KINDS = ("pods", "statefulsets", "deployments", "replicasets", "jobs", "services", "configmaps", "secrets",
               "networkpolicies", "poddisruptionbudgets", "servicemonitors")
TIMINGS = REPO / "build" / "e2e" / "timings.json"
OPERATOR_NAMESPACE = "privatemodel-system"
OPERATOR_SELECTOR = "app.kubernetes.io/name=privatemodel"


class Diagnostics:
    """Where the dump of a timed-out wait looks; the e2e fixtures set it (kubeconfig, the test namespace)."""

    kubeconfig = None
    namespace = None


def diagnose(kubeconfig, namespace) -> str:
    """What a person looks at when a model does not get where it should: the operator's pods and
    log tail, the namespace's PrivateModels (status), their events, pods and last events."""
    sections = [
        ("operator pods", ["-n", OPERATOR_NAMESPACE, "get", "pods", "-o", "wide"], None),
        ("operator log", ["-n", OPERATOR_NAMESPACE, "logs", "-l", OPERATOR_SELECTOR, "--tail=40", "--prefix"], None),
    ]
    if namespace:
        sections += [
            (f"PrivateModels in {namespace}", ["-n", namespace, "get", "privatemodels", "-o",
                                                'jsonpath={range .items[*]}{.metadata.name}: {.status}{"\\n"}{end}'], None),
            ("their events", ["-n", namespace, "get", "events", "--sort-by=.lastTimestamp",
                              f"--field-selector=involvedObject.kind={consts.KIND}"], 15),
            ("pods", ["-n", namespace, "get", "pods", "-o", "wide"], None),
            ("last events", ["-n", namespace, "get", "events", "--sort-by=.lastTimestamp"], 25),
        ]
    dump = []
    for title, args, last_lines in sections:
        try:
            result = kubectl(kubeconfig, *args, check=False, timeout=30)
            text = (result.stdout + result.stderr).rstrip()
        except subprocess.TimeoutExpired:
            text = "(kubectl timed out)"
        lines = text.splitlines()
        if last_lines:  # the header and the newest
            lines = lines[:1] + lines[1:][-last_lines:]
        dump.append(f"--- {title} ---\n" + "\n".join(lines))
    return "\n".join(dump)


def wait_until(check, timeout, what, interval=0.5):
    """cluster.kube.wait_until; on a timeout the message carries the diagnostic dump."""
    try:
        return kube.wait_until(check, timeout, what, interval=interval)
    except AssertionError as error:
        if Diagnostics.kubeconfig is None:
            raise
        raise AssertionError(f"{error}\n{diagnose(Diagnostics.kubeconfig, Diagnostics.namespace)}") from None


def kubectl(kubeconfig, *args, check=True, input=None, timeout=180):
    return subprocess.run([str(BIN / "kubectl"), f"--kubeconfig={kubeconfig}", *args], input=input,
                          capture_output=True, text=True, check=check, timeout=timeout)


def helm(kubeconfig, *args, timeout=300):
    return subprocess.run([str(BIN / "helm"), f"--kubeconfig={kubeconfig}", *args],
                          capture_output=True, text=True, check=True, timeout=timeout)


def private_model(custom, namespace, name):
    try:
        return custom.get_namespaced_custom_object(consts.GROUP, consts.VERSION, namespace, consts.PLURAL, name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def wait_for_phase(custom, namespace, name, phase, timeout, check=None):
    """Wait until the PrivateModel is in `phase` (and check(model) holds); return (model, seconds)."""
    started = time.monotonic()

    def reached():
        model = private_model(custom, namespace, name) or {}
        status = model.get("status", {})
        if status.get("phase") == phase and (check is None or check(model)):
            return model
        return False

    # The dump of a timeout shows the status then (a status read here would be the one before waiting).
    model = wait_until(reached, timeout, f"PrivateModel {namespace}/{name} in phase {phase}", interval=1)
    return model, time.monotonic() - started


def condition(model, condition_type):
    return next((c for c in model["status"].get("conditions", []) if c["type"] == condition_type), None)


def wait_until_serving(custom, namespace, name, timeout, check=None):
    """Phase Serving and Ready=True: the serving pod answers (`kubectl wait --for=condition=Ready`)."""
    def ready(model):
        ready = condition(model, "Ready")
        return ready is not None and ready["status"] == "True" and (check is None or check(model))

    return wait_for_phase(custom, namespace, name, "Serving", timeout, check=ready)


def record_timing(what: str, seconds: float) -> None:
    """Measured durations, for the notes (the tests bound them only by generous timeouts)."""
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    timings[what] = round(seconds, 1)
    TIMINGS.write_text(json.dumps(timings, indent=2) + "\n")
    print(f"{what}: {seconds:.1f} s")


def create_model_secret(kubeconfig, namespace, name, h5_path):
    kubectl(kubeconfig, "-n", namespace, "create", "secret", "generic", name, f"--from-file=model.h5={h5_path}")


def example_manifest(name):
    """The example PrivateModel, renamed."""
    import yaml

    manifest = yaml.safe_load(EXAMPLE.read_text())
    manifest["metadata"]["name"] = name
    return manifest


def apply_manifest(kubeconfig, namespace, manifest, *flags, check=True):
    """`kubectl apply` of one manifest, as a user pipes it in."""
    import yaml

    return kubectl(kubeconfig, "-n", namespace, "apply", *flags, "-f", "-", input=yaml.safe_dump(manifest),
                   check=check)


def apply_model(kubeconfig, namespace, name, secret, num_requests=None, input_shape=(1, 28, 28, 1)):
    """The example manifest, renamed and pointed at another Secret, as a user would adapt it."""
    manifest = example_manifest(name)
    manifest["spec"]["inputShape"] = list(input_shape)
    manifest["spec"]["model"]["secretKeyRef"]["name"] = secret
    if num_requests is None:
        manifest["spec"].pop("serving")
    else:
        manifest["spec"]["serving"]["numRequests"] = num_requests
    return apply_manifest(kubeconfig, namespace, manifest)


def npy_config_map(core, namespace, name, arrays):
    """A ConfigMap of .npy files: how plaintext inputs get into a client pod in these tests."""
    files = {}
    for index, array in enumerate(arrays):
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array, dtype=np.float32))
        files[f"{index}.npy"] = base64.b64encode(buffer.getvalue()).decode()
    core.create_namespaced_config_map(namespace, {"metadata": {"name": name}, "binaryData": files})


def run_pod(core, namespace, name, command, volumes=(), labels=None, timeout=300, cpu_request=None):
    """A runtime-image pod that runs `command` once, as users' pods would (no token, non-root);
    volumes: (name, mount path, volume source) triples. Without cpu_request it is BestEffort, and
    gets almost no CPU while the players are busy. Returns (phase, log)."""
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": consts.RUNTIME_UID},
            "containers": [{
                "name": "main", "image": RUNTIME_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": command,
                "env": [{"name": "HOME", "value": "/tmp"}],
                "volumeMounts": [{"name": volume, "mountPath": path, "readOnly": True} for volume, path, _ in volumes],
                **({"resources": {"requests": {"cpu": cpu_request}}} if cpu_request else {}),
            }],
            "volumes": [{"name": volume, **source} for volume, _, source in volumes],
        },
    })

    def finished():
        phase = core.read_namespaced_pod(name, namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_until(finished, timeout, f"pod {name} to finish", interval=1)
    return phase, pod_log(core, namespace, name)


def prometheus_samples(text, prefix):
    """{'name{labels}': value} of the samples in Prometheus text format whose names start with prefix."""
    samples = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def operator_metrics(core, namespace, release="pm"):
    """A real scrape: an HTTP GET of the operator's /metrics through the chart's metrics Service,
    from a pod in `namespace`. Returns {sample: value} of the privatemodel_operator_ samples."""
    url = f"http://{release}-privatemodel-metrics.{OPERATOR_NAMESPACE}.svc:{consts.DEFAULT_METRICS_PORT}/metrics"
    phase, log = run_pod(core, namespace, f"scrape-{uuid.uuid4().hex[:6]}", ["python3", "-c",
                         f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"])
    assert phase == "Succeeded", log
    return prometheus_samples(log, "privatemodel_operator_")


def serving_metrics(core, custom, namespace, model_name):
    """A real scrape of serving's /metrics, as Prometheus would do it from the model's
    ServiceMonitor: HTTPS to the Service, trusting the CA and server name the ServiceMonitor names."""
    monitor = custom.get_namespaced_custom_object("monitoring.coreos.com", "v1", namespace, "servicemonitors",
                                                  child_name(model_name, Component.SERVING))
    (endpoint,) = monitor["spec"]["endpoints"]
    tls = endpoint["tlsConfig"]
    ca = tls["ca"]["configMap"]
    script = (
        "import ssl; from privatemodel import pki; "
        f"context = ssl.create_default_context(cafile='/ca/{ca['key']}'); "
        f"connection = pki.PartyHTTPSConnection({child_name(model_name, Component.SERVING)!r}, "
        f"{contract.SERVING_PORT}, {tls['serverName']!r}, context, 10); "
        f"connection.request('GET', {endpoint['path']!r}); print(connection.getresponse().read().decode())")
    phase, log = run_pod(core, namespace, f"scrape-{uuid.uuid4().hex[:6]}", ["python3", "-c", script],
                         volumes=[("ca", "/ca", {"configMap": {"name": ca["name"]}})])
    assert phase == "Succeeded", log
    return prometheus_samples(log, "privatemodel_serving_")


def json_answers(log, count):
    answers = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(answers) == count, log
    return np.concatenate([np.asarray(answer["logits"]) for answer in answers])


def predict_in_cluster(core, namespace, model_name, examples, timeout=300):
    """Run a client pod that sends each example as its own private prediction; return the logits.

    The pod mounts only the model's access ConfigMap (URLs and CA: HTTPS to serving and the share
    holders' ingress) and its inputs; it is the only place the plaintext inputs and answers exist.
    """
    pod_name = f"client-{uuid.uuid4().hex[:6]}"
    npy_config_map(core, namespace, pod_name, examples)
    access = f"{consts.ACCESS_DIR}/{contract.ACCESS_FILE}"
    script = " && ".join(f"privatemodel predict --access {access} --input /data/{i}.npy --json"
                         for i in range(len(examples)))
    phase, log = run_pod(core, namespace, pod_name, ["/bin/sh", "-c", script], volumes=[
        ("access", consts.ACCESS_DIR, {"configMap": {"name": child_name(model_name, Component.ACCESS)}}),
        ("inputs", "/data", {"configMap": {"name": pod_name}}),
    ], timeout=timeout)
    assert phase == "Succeeded", f"client pod failed:\n{log}"
    return json_answers(log, len(examples))


def node_ip(core):
    (node,) = core.list_node().items
    return next(a.address for a in node.status.addresses if a.type == "InternalIP")


def access_through_node_ports(core, namespace, model_name):
    """access.json as a client outside the cluster writes it: the node's address and the
    NodePorts of serving and the ingresses, with the CA from the model's access ConfigMap."""
    config_map = core.read_namespaced_config_map(child_name(model_name, Component.ACCESS), namespace)
    access = json.loads(config_map.data[contract.ACCESS_FILE])
    address = node_ip(core)
    services = {"serving": child_name(model_name, Component.SERVING),
                **{p: child_name(model_name, Component.INGRESS, p) for p in contract.SHARE_HOLDERS}}
    for key, service in services.items():
        (port,) = core.read_namespaced_service(service, namespace).spec.ports
        access[key] = f"https://{address}:{port.node_port}"
    return access


def predict_from_host(access, examples, work_dir):
    """`privatemodel predict` on this machine (outside the cluster), one example at a time."""
    access_file = Path(work_dir) / contract.ACCESS_FILE
    access_file.write_text(json.dumps(access))
    lines = []
    for index, example in enumerate(examples):
        query = Path(work_dir) / f"{index}.npy"
        np.save(query, np.asarray(example, dtype=np.float32))
        result = subprocess.run([str(REPO / ".venv" / "bin" / "privatemodel"), "predict", "--access", str(access_file),
                                 "--input", str(query), "--json"], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        lines.append(result.stdout)
    return json_answers("".join(lines), len(examples))


def children(api_client, namespace, model_name):
    """Every object in the namespace that carries the model's label, by kind."""
    from kubernetes import dynamic

    client = dynamic.DynamicClient(api_client)
    selector = f"{consts.LABEL_MODEL}={model_name}"
    found = {}
    for kind in CHILD_KINDS:
        group = {"jobs": "batch/v1", "networkpolicies": "networking.k8s.io/v1", "statefulsets": "apps/v1",
                 "deployments": "apps/v1", "replicasets": "apps/v1",
                 "servicemonitors": "monitoring.coreos.com/v1"}.get(kind, "v1")
        if kind == "poddisruptionbudgets":  # policy/v1 from Kubernetes 1.21, policy/v1beta1 before
            resource = next(r for version in ("v1", "v1beta1")
                            for r in client.resources.search(group="policy", api_version=version, name=kind))
        else:
            resource = client.resources.get(api_version=group, name=kind)
        names = [item.metadata.name for item in resource.get(namespace=namespace, label_selector=selector).items]
        if names:
            found[kind] = sorted(names)
    return found
