"""kopf handlers, kept thin: one reconcile timer per PrivateModel (the tick itself is
reconcile.py), the teardown on deletion, the liveness probe; status written only on change."""
import logging
import os
import time

import kopf
import kubernetes

from privatemodel.controller import consts, kube, metrics, observe, tls
from privatemodel.controller.conditions import find_condition
from privatemodel.controller.consts import ConditionType, Phase
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.liveness import Sightings
from privatemodel.controller.naming import selector_labels
from privatemodel.controller.reconcile import serving_unchanged, status_changes, tick
from privatemodel.controller.schedule import Schedule

RESOURCE = (consts.GROUP, consts.VERSION, consts.PLURAL)
STATUS_TIMEOUT_SECONDS = 3
# The API server ends each watch request after WATCH_SERVER_TIMEOUT s and kopf resumes it from the
# last resourceVersion; the client gives up on it a little later. A stream whose connection died
# without a close (a restarted or frozen API server, a lost NAT entry: no FIN ever arrives) is
# thus replaced within WATCH_CLIENT_TIMEOUT s, instead of never.
WATCH_SERVER_TIMEOUT = 60
WATCH_CLIENT_TIMEOUT = 90
CONNECT_TIMEOUT = 10
# kopf's own patches and lists (finalizers, status): a request sent on a dead keep-alive
# connection waits this long, not kopf's default of 5 minutes.
REQUEST_TIMEOUT = 30
# The liveness probe fails when a PrivateModel has gone this long without a reconcile tick at its
# current generation: the operator no longer sees it (see liveness.py).
UNRECONCILED_BOUND = 60
PROBE_LIST_TIMEOUT = 5
# A model at rest gets a full reconcile tick at least this often, whatever the watches saw.
RESYNC_SECONDS = 120
# The children the operator makes, watched (by the model label, server-side) so that a change to
# any of them reconciles its model at the next tick. Secrets are not: the operator may not read them.
CHILD_RESOURCES = (("apps", "v1", "statefulsets"), ("apps", "v1", "deployments"), ("batch", "v1", "jobs"),
                   ("", "v1", "pods"), ("", "v1", "services"), ("", "v1", "configmaps"),
                   ("networking.k8s.io", "v1", "networkpolicies"), ("policy", None, "poddisruptionbudgets"))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger, **_):
    settings.persistence.finalizer = consts.FINALIZER
    # The CRD comes with the chart; no rights to scan namespaces or CRDs are granted.
    settings.scanning.disabled = True
    # Events are posted explicitly, one per transition, not one per log line.
    settings.posting.level = logging.WARNING
    # kopf logs every successful tick; the handlers log what they change instead.
    logging.getLogger("kopf.objects").addFilter(_QuietTicks())
    # The kubelet's probes every few seconds would fill the log; failures are logged by kopf.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    settings.watching.connect_timeout = CONNECT_TIMEOUT
    # Not 0.1 s: while the API server restarts, reconnect once a second, not ten times.
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = REQUEST_TIMEOUT
    settings.networking.connect_timeout = CONNECT_TIMEOUT
    memo.defaults = OperatorDefaults.from_env()
    memo.kube = kube.connect()
    # The probe lists PrivateModels in the scope kopf watches (the chart passes it; empty: all),
    # with the configuration kube.connect() loaded.
    memo.watch_namespace = os.environ.get(consts.ENV_WATCH_NAMESPACE) or None
    memo.models_api = kubernetes.client.CustomObjectsApi()
    memo.sightings = Sightings()
    memo.phases = metrics.PhaseBook()
    memo.schedule = Schedule(RESYNC_SECONDS)
    metrics_port = int(os.environ.get(consts.ENV_METRICS_PORT) or consts.DEFAULT_METRICS_PORT)
    metrics.serve(metrics_port)
    logger.info("runtime image %s (pull %s), cluster domain %s; metrics on port %d", memo.defaults.runtime_image,
                memo.defaults.image_pull_policy, memo.defaults.cluster_domain, metrics_port)


@kopf.timer(*RESOURCE, interval=consts.RECONCILE_INTERVAL, backoff=consts.RECONCILE_INTERVAL)
def reconcile(body, name, namespace, meta, status, patch, memo: kopf.Memo, logger, **_):
    """Every RECONCILE_INTERVAL: a full tick when the schedule says so (a child or the spec changed,
    the model converges, the resync period passed) or serving's status moved on; otherwise nothing."""
    now = time.monotonic()
    memo.sightings.reconciled(meta["uid"], meta.get("generation", 1), now)
    reporter = _KopfReporter(body)
    if not memo.schedule.take(namespace, name, status, meta.get("generation"), now) and (
            serving_unchanged(reporter, status)):
        return
    started, result = now, metrics.Result.ERROR
    try:
        done = tick(memo.kube, reporter, memo.defaults, body, logger)
        result = done.result
        _write_status(body, dict(status), done.status, patch, logger)
        memo.phases.record(meta["uid"], done.phase)
    finally:
        metrics.RECONCILES.labels(result).inc()
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)


def _child_changed(namespace, labels, memo: kopf.Memo, **_):
    memo.schedule.touch(namespace, labels[consts.LABEL_MODEL])


for _group, _version, _plural in CHILD_RESOURCES:
    # No version for PodDisruptionBudgets: policy/v1beta1 before Kubernetes 1.21, policy/v1 after.
    _resource = (_group, _version, _plural) if _version else (_group, _plural)
    kopf.on.event(*_resource, id=f"child-{_plural}", labels={consts.LABEL_MODEL: kopf.PRESENT})(_child_changed)


@kopf.on.delete(*RESOURCE)
def tear_down(name, namespace, uid, memo: kopf.Memo, logger, **_):
    """Delete every child this PrivateModel owns, in the foreground, and wait until none is left.

    Children are found by label and proven by owner reference: another object that carries the
    label (a user's pod, say) is neither deleted nor waited for. In the foreground a child stays
    until what it owns is gone (a StatefulSet until its pod, serving's Deployment until its
    ReplicaSet and pod), so no child left means no pod of the model runs."""
    remaining, workloads_left = [], False
    for kind in kube.CHILD_KINDS:
        for child in observe.owned_by(memo.kube.list(kind, namespace, selector_labels(name)), uid):
            meta = child["metadata"]
            remaining.append(f"{kind} {meta['name']}")
            if kind not in kube.WORKLOAD_KINDS and workloads_left:
                continue  # what the pods mount goes once they are gone
            if not meta.get("deletionTimestamp") and memo.kube.delete(kind, namespace, meta["name"], foreground=True):
                logger.info("deleting %s %s", kind, meta["name"])
        workloads_left = workloads_left or (kind in kube.WORKLOAD_KINDS and bool(remaining))
    if remaining:
        raise kopf.TemporaryError(f"waiting for {len(remaining)} children to go: {', '.join(remaining)}", delay=2)
    memo.phases.record(uid, None)
    memo.schedule.forget(namespace, name)
    logger.info("all children of %s/%s are gone", namespace, name)


@kopf.on.probe(id="reconciledModels")
def every_model_reconciled(memo: kopf.Memo, logger, **_):
    """Liveness and readiness: fail (HTTP 500, so the kubelet restarts the operator) when a
    PrivateModel that exists has gone unreconciled too long. The list is a request of its own,
    so a watch stream that went silent cannot hide the model."""
    try:
        if memo.watch_namespace:
            listed = memo.models_api.list_namespaced_custom_object(
                consts.GROUP, consts.VERSION, memo.watch_namespace, consts.PLURAL, _request_timeout=PROBE_LIST_TIMEOUT)
        else:
            listed = memo.models_api.list_cluster_custom_object(
                consts.GROUP, consts.VERSION, consts.PLURAL, _request_timeout=PROBE_LIST_TIMEOUT)
    except Exception as error:  # noqa: BLE001 - an unreachable API server is no reason to restart
        logger.warning("liveness: cannot list PrivateModels: %s", error)
        return "unknown"
    overdue = memo.sightings.overdue(listed["items"], time.monotonic(), UNRECONCILED_BOUND)
    if overdue:
        raise kopf.PermanentError(f"not reconciled for over {UNRECONCILED_BOUND}s: {', '.join(overdue)}")
    return len(listed["items"])


class _QuietTicks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timer 'reconcile' succeeded")


class _KopfReporter:
    def __init__(self, body):
        self.body = body

    def event(self, event_type: str, reason: str, message: str) -> None:
        kopf.event(self.body, type=event_type, reason=reason, message=message)

    def serving_status(self, url: str, ca_certificate: str) -> dict:
        return tls.get_json(url, ca_certificate, consts.SERVING_PARTY, timeout=STATUS_TIMEOUT_SECONDS)


def _write_status(body, old: dict, new: dict, patch, logger) -> None:
    """Patch only the fields that changed, and announce a new phase."""
    changed = status_changes(old, new)
    if not changed:
        return
    patch.status.update(changed)
    if "phase" in changed:
        ready = find_condition(new["conditions"], ConditionType.READY) or {}
        message = f"{old.get('phase') or 'new'} -> {new['phase']}: {ready.get('message', '')}"
        logger.info("phase %s", message)
        kopf.event(body, type="Warning" if new["phase"] == Phase.FAILED else "Normal", reason=new["phase"], message=message)
