"""kopf handlers: one reconcile timer per PrivateModel, and the teardown on deletion.

The timer is level-triggered: each tick reads the children, applies what the spec asks for,
and writes status only when it changed. A restarted operator simply ticks again, so it never
duplicates children. Steps, each gated on the one before:
  certificates (once; a tick of their own) -> mesh and players (hostmap, NetworkPolicies,
  Services, a StatefulSet per player) -> sharing Job -> serving Deployment/Service.
"""
import logging
import os
import time

import kopf
import kubernetes

from privatemodel import contract
from privatemodel.controller import consts, kube, metrics, observe, tls
from privatemodel.controller.conditions import find_condition, rollup, set_condition
from privatemodel.controller.consts import Component, ConditionType, Phase, Reason
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.liveness import Sightings
from privatemodel.controller.naming import child_name, selector_labels
from privatemodel.controller.objects.mesh import build_hostmap_config_map, build_mesh_service, build_network_policies
from privatemodel.controller.objects.players import (
    build_ingress_service,
    build_players_disruption_budget,
    build_player_stateful_set,
    build_players_service,
)
from privatemodel.controller.objects.serving import build_serving_deployment, build_serving_service
from privatemodel.controller.objects.sharing import build_sharing_job, sharing_digest
from privatemodel.controller.objects.tls import access, build_access_config_map, build_tls_secret
from privatemodel.controller.spec import SpecError, check_model_name, parse_spec

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
    metrics_port = int(os.environ.get(consts.ENV_METRICS_PORT) or consts.DEFAULT_METRICS_PORT)
    metrics.serve(metrics_port)
    logger.info("runtime image %s (pull %s), cluster domain %s; metrics on port %d", memo.defaults.runtime_image,
                memo.defaults.image_pull_policy, memo.defaults.cluster_domain, metrics_port)


@kopf.timer(*RESOURCE, interval=consts.RECONCILE_INTERVAL, backoff=consts.RECONCILE_INTERVAL)
def reconcile(body, name, namespace, meta, spec, status, patch, memo: kopf.Memo, logger, **_):
    memo.sightings.reconciled(meta["uid"], meta.get("generation", 1), time.monotonic())
    started, result = time.monotonic(), metrics.Result.ERROR
    try:
        phase, result = _reconcile(body, name, namespace, meta, spec, dict(status), patch, memo, logger)
        memo.phases.record(meta["uid"], phase)
    finally:
        metrics.RECONCILES.labels(result).inc()
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)


def _reconcile(body, name, namespace, meta, spec, status, patch, memo: kopf.Memo, logger) -> tuple[str, str]:
    """(the phase written, the tick's metrics.Result)."""
    try:
        check_model_name(name)
        model = parse_spec(spec)
        memo.defaults.check_images(model)
    except SpecError as error:
        conditions, phase = rollup(status.get("conditions"), spec_error=str(error))
        update = {"phase": phase, "conditions": conditions, "observedGeneration": meta.get("generation")}
        _write_status(body, status, update, patch, logger)
        return phase, metrics.Result.INVALID_SPEC
    run = _Reconciliation(memo.kube, memo.defaults, body, model, name, namespace, status, logger)
    update = run.reconcile()
    conditions, phase = rollup(update.pop("conditions"))
    _write_status(body, status, {**update, "phase": phase, "conditions": conditions}, patch, logger)
    return phase, metrics.Result.OK


@kopf.on.delete(*RESOURCE)
def tear_down(name, namespace, uid, memo: kopf.Memo, logger, **_):
    """Delete every child this PrivateModel owns, in the foreground, and wait until none is left.

    Children are found by label and proven by owner reference: another object that carries the
    label (a user's pod, say) is neither deleted nor waited for. In the foreground a child stays
    until what it owns is gone (a StatefulSet until its pod, serving's Deployment until its
    ReplicaSet and pod), so no child left means no pod of the model runs."""
    remaining = []
    for kind in kube.CHILD_KINDS:
        for child in observe.owned_by(memo.kube.list(kind, namespace, selector_labels(name)), uid):
            meta = child["metadata"]
            remaining.append(f"{kind} {meta['name']}")
            if not meta.get("deletionTimestamp") and memo.kube.delete(kind, namespace, meta["name"], foreground=True):
                logger.info("deleting %s %s", kind, meta["name"])
    if remaining:
        raise kopf.TemporaryError(f"waiting for {len(remaining)} children to go: {', '.join(remaining)}", delay=2)
    memo.phases.record(uid, None)
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


class _Reconciliation:
    """One tick for one PrivateModel: returns the status fields it observed."""

    def __init__(self, kube_api: kube.Kube, defaults: OperatorDefaults, body, model, name, namespace, status, logger):
        self.kube, self.defaults, self.body, self.model = kube_api, defaults, body, model
        self.name, self.namespace, self.status, self.logger = name, namespace, status, logger
        self.conditions = status.get("conditions") or []
        self.issuance: tls.Issuance | None = None
        self.update: dict = {}

    def reconcile(self) -> dict:
        self.issuance = tls.Issuance.from_status(self.status)
        if self.issuance is None:
            # Status records the issuance before anything mounts a Secret: were it lost, the next
            # tick would issue another CA whose Secrets (named after it) nothing uses yet.
            self.update["tls"] = self._issue().to_status()
        else:
            self._children()
        self.update["conditions"] = self.conditions
        self.update["observedGeneration"] = self.body["metadata"].get("generation")
        return self.update

    def _children(self) -> None:
        self._access()
        players = self._players()
        if self._completed_this_generation():
            # Answered its numRequests; players keep their shares until the model is deleted.
            self._stop_serving()
        elif (shared_digest := self._shared_digest(players)) is not None:
            self._serving(shared_digest)
        else:
            self._stop_serving()
            self._condition(ConditionType.SERVING, False, Reason.WAITING_FOR_SHARES, "waiting for the weights to be shared")

    def _issue(self) -> tls.Issuance:
        """A CA and a Secret per party. The operator may create Secrets, never read them: names carry
        the CA's hash, so a tick that fails half-way leaves only Secrets nothing mounts (collected
        with the PrivateModel) and the next tick issues a whole new set."""
        issuance, parties = tls.issue(self.name)
        for party, (key, certificate) in parties.items():
            secret = build_tls_secret(self.name, self.namespace, issuance, party, key, certificate)
            kopf.append_owner_reference(secret, owner=self.body)
            self.kube.create(secret)
        self._event("Normal", "CertificatesIssued",
                    f"issued a CA ({issuance.issuer}) and certificates for {', '.join(contract.PARTY_NAMES)}")
        return issuance

    def _access(self) -> None:
        config_map = build_access_config_map(self.model, self.name, self.namespace, self.defaults, self.issuance)
        self._apply(config_map)
        urls = access(self.name, self.namespace, self.defaults, self.issuance)
        urls.pop("ca")  # in status.tls already
        self.update["access"] = {"configMap": config_map["metadata"]["name"], **urls}

    def _players(self) -> observe.Players:
        build = (self.model, self.name, self.namespace, self.defaults)
        children = [build_hostmap_config_map(*build), *build_network_policies(*build), build_players_service(*build)]
        children += [build_mesh_service(*build, controller) for controller in contract.CONTROLLER_NAMES]
        children += [build_ingress_service(*build, player) for player in contract.SHARE_HOLDERS]
        children += [build_player_stateful_set(*build, player, self.issuance) for player in contract.PLAYER_NAMES]
        children.append(build_players_disruption_budget(*build, self.kube.pdb_api_version))
        for child in children:
            self._apply(child)
        pods = self.kube.list("Pod", self.namespace, selector_labels(self.name, Component.PLAYERS))
        players = observe.players_from_pods(self.name, pods)
        self.update["readyPlayers"] = players.summary
        if players.all_ready:
            self._condition(ConditionType.PLAYERS_READY, True, Reason.PLAYERS_READY, "3/3 player pods ready")
        else:
            self._condition(ConditionType.PLAYERS_READY, False, Reason.PLAYERS_STARTING,
                            f"{players.summary} player pods ready")
        return players

    def _completed_this_generation(self) -> bool:
        serving = find_condition(self.conditions, ConditionType.SERVING)
        completed = serving is not None and serving.get("reason") == Reason.REQUESTS_COMPLETED
        # An edited spec (a new generation) is served anew.
        return completed and self.status.get("observedGeneration") == self.body["metadata"].get("generation")

    def _shared_digest(self, players: observe.Players) -> str | None:
        """The digest of the shares in place when they are of the current model and players;
        otherwise None, after driving the sharing Job one step."""
        uids = players.uids
        digest = uids and sharing_digest(self.model, uids)
        job_name = digest and child_name(self.name, Component.SHARING, digest)
        if digest and digest == self.status.get("sharedDigest"):
            return self._shared(job_name, digest)
        lost = bool(self.status.get("sharedDigest"))
        if not players.all_ready:
            reason = Reason.SHARES_LOST if lost else Reason.WAITING_FOR_PLAYERS
            message = "a player pod holding a share was replaced; sharing again once all players are ready" if lost else (
                f"waiting for the player pods ({players.summary} ready)")
            self._condition(ConditionType.WEIGHTS_SHARED, False, reason, message)
            return None
        self._delete_stale_sharing_jobs(digest)
        job = self.kube.get("Job", self.namespace, job_name)
        if job is None:
            self._apply(build_sharing_job(self.model, self.name, self.namespace, self.defaults, uids, self.issuance))
            self._event("Normal", "SharingStarted", f"sharing the model onto the players with job {job_name}")
            job = {}  # just created: no status yet, so running
        self.update["sharingJob"] = job_name
        outcome = observe.job_outcome(job)
        if outcome == observe.JobOutcome.SUCCEEDED:
            self.update.update(sharedDigest=digest, sharedPlayerUIDs=uids)
            return self._shared(job_name, digest)
        if outcome == observe.JobOutcome.FAILED:
            pods = self.kube.list("Pod", self.namespace, {"job-name": job_name})
            why = observe.job_failure_message(job, pods)
            self._condition(ConditionType.WEIGHTS_SHARED, False, Reason.SHARING_FAILED, f"job {job_name}: {why} (fix the model or spec; deleting the job retries)")
            return None
        pods = self.kube.list("Pod", self.namespace, {"job-name": job_name})
        waiting = observe.waiting_reasons(pods)
        if waiting and (missing := self._missing_sources(pods)):
            self._condition(ConditionType.WEIGHTS_SHARED, False, Reason.MODEL_SOURCE_NOT_FOUND,
                            f"job {job_name} cannot read the model: {'; '.join(missing)}"
                            " (create it, or fix spec.model; sharing starts once it exists)")
            return None
        reason = Reason.SHARES_LOST if lost else Reason.SHARING_IN_PROGRESS
        # A pod stuck before start (a missing model Secret: ContainerCreating) says so here.
        detail = f" (waiting: {', '.join(waiting)}; `kubectl describe` the pod for why)" if waiting else ""
        self._condition(ConditionType.WEIGHTS_SHARED, False, reason, f"job {job_name} is sharing the model{detail}")
        return None

    def _missing_sources(self, pods: list[dict]) -> list[str]:
        """What the waiting sharing pods' events say is missing (the operator cannot read Secrets)."""
        missing = []
        for pod in pods:
            missing += [m for m in observe.missing_sources(self.kube.events(self.namespace, pod["metadata"]["name"]))
                        if m not in missing]
        return missing

    def _shared(self, job_name: str, digest: str) -> str:
        self._condition(ConditionType.WEIGHTS_SHARED, True, Reason.SHARED, f"shared onto the players by job {job_name}")
        return digest

    def _delete_stale_sharing_jobs(self, digest: str) -> None:
        jobs = self.kube.list("Job", self.namespace, selector_labels(self.name, Component.SHARING))
        for job in observe.owned_by(jobs, self.body["metadata"]["uid"]):
            if job["metadata"].get("labels", {}).get(consts.LABEL_SHARING_DIGEST) != digest:
                self.kube.delete("Job", self.namespace, job["metadata"]["name"])

    def _serving(self, shared_digest: str) -> None:
        deployment = build_serving_deployment(self.model, self.name, self.namespace, self.defaults, shared_digest,
                                              self.issuance)
        self._apply(deployment)
        self._apply(build_serving_service(self.model, self.name, self.namespace, self.defaults))
        url = self.update["access"]["serving"]
        live = self.kube.get("Deployment", self.namespace, deployment["metadata"]["name"])
        if live is None or not observe.is_deployment_ready(live):
            self._condition(ConditionType.SERVING, False, Reason.SERVING_STARTING, "waiting for the serving pod to be ready")
            return
        try:
            served = tls.get_json(url + consts.SERVING_STATUS_PATH, self.issuance.ca_certificate, consts.SERVING_PARTY,
                                  timeout=STATUS_TIMEOUT_SECONDS)
        except (OSError, ValueError) as error:
            self._condition(ConditionType.SERVING, False, Reason.SERVING_STARTING, f"{url} does not answer: {error}")
            return
        self.update["requestsServed"] = served.get("requestsServed", 0)
        if served.get("completed"):
            self._condition(ConditionType.SERVING, False, Reason.REQUESTS_COMPLETED,
                            f"answered all {served.get('numRequests')} requests; serving stopped")
            self._stop_serving()
        else:
            self._condition(ConditionType.SERVING, True, Reason.SERVING_READY, f"serving private predictions at {url}")

    def _stop_serving(self) -> None:
        """No serve process may drive the players while their shares are replaced or after the last request."""
        for kind in ("Deployment", "Service"):
            if self.kube.delete(kind, self.namespace, child_name(self.name, Component.SERVING)):
                self.logger.info("deleted serving %s", kind)

    def _apply(self, manifest: dict) -> None:
        kopf.append_owner_reference(manifest, owner=self.body)
        result = self.kube.apply(manifest)
        if result == "reverted":
            metrics.DRIFT_REVERTED.labels(manifest["kind"]).inc()
            self._event("Warning", "DriftReverted",
                        f"{manifest['kind']} {manifest['metadata']['name']} was changed by hand; restored as the spec says")
        elif result != "unchanged":
            self.logger.info("%s %s %s", result, manifest["kind"], manifest["metadata"]["name"])

    def _condition(self, condition_type: str, status: bool, reason: str, message: str) -> None:
        before = find_condition(self.conditions, condition_type)
        self.conditions = set_condition(self.conditions, condition_type, status, reason, message)
        if before is None or before.get("reason") != reason or before.get("status") != ("True" if status else "False"):
            event_type = "Warning" if reason in consts.FAILURE_REASONS or reason == Reason.SHARES_LOST else "Normal"
            self._event(event_type, reason, f"{condition_type}: {message}")

    def _event(self, event_type: str, reason: str, message: str) -> None:
        self.logger.info("%s: %s", reason, message)
        kopf.event(self.body, type=event_type, reason=reason, message=message)


def _write_status(body, old: dict, new: dict, patch, logger) -> None:
    """Patch only the fields that changed, and announce a new phase."""
    changed = {key: value for key, value in new.items() if old.get(key) != value}
    if not changed:
        return
    patch.status.update(changed)
    if "phase" in changed:
        ready = find_condition(new["conditions"], ConditionType.READY) or {}
        message = f"{old.get('phase') or 'new'} -> {new['phase']}: {ready.get('message', '')}"
        logger.info("phase %s", message)
        kopf.event(body, type="Warning" if new["phase"] == Phase.FAILED else "Normal", reason=new["phase"], message=message)
