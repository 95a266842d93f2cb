"""One reconcile tick of one PrivateModel, in small steps, each gated on the one before:
  certificates (once; a tick of their own) -> mesh and players (hostmap, NetworkPolicies,
  Services, a StatefulSet per player, their disruption budget) -> sharing Job -> serving.

The tick is level-triggered: it reads the children, applies what the spec asks for and returns
the status it observed; a restarted operator simply ticks again, so it never duplicates children.
It reads and writes through a Cluster (kube.Kube; an in-memory fake in the unit tests) and
reports through a Reporter (events, and serving's HTTPS status). Nothing here knows kopf.
"""
import logging
from dataclasses import dataclass
from typing import Protocol

from privatemodel import contract
from privatemodel.controller import consts, metrics, observe, tls
from privatemodel.controller.conditions import find_condition, rollup, set_condition
from privatemodel.controller.consts import Component, ConditionType, Phase, Reason
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import child_name, selector_labels
from privatemodel.controller.objects.mesh import build_hostmap_config_map, build_mesh_service, build_network_policies
from privatemodel.controller.objects.players import (
    build_ingress_service,
    build_player_stateful_set,
    build_players_disruption_budget,
    build_players_service,
)
from privatemodel.controller.objects.serving import (
    build_serving_deployment,
    build_serving_service,
    build_serving_service_monitor,
)
from privatemodel.controller.objects.sharing import build_sharing_job, sharing_digest
from privatemodel.controller.objects.tls import access, build_access_config_map, build_tls_secret
from privatemodel.controller.spec import PrivateModelSpec, SpecError, check_model_name, parse_spec


class Cluster(Protocol):
    """The API calls a tick makes (kube.Kube)."""

    pdb_api_version: str

    def get(self, kind: str, namespace: str, name: str) -> dict | None: ...
    def events(self, namespace: str, involved_name: str) -> list[dict]: ...
    def create(self, manifest: dict) -> dict: ...
    def apply(self, manifest: dict) -> str: ...
    def delete(self, kind: str, namespace: str, name: str, foreground: bool = False) -> bool: ...
    def list(self, kind: str, namespace: str, labels: dict) -> list[dict]: ...  # last: it shadows `list`


class Reporter(Protocol):
    def event(self, event_type: str, reason: str, message: str) -> None:
        """An Event on the PrivateModel."""

    def serving_status(self, url: str, ca_certificate: str) -> dict:
        """serving's /status over HTTPS, verified as the serve party; OSError or ValueError if it does not answer."""


@dataclass(frozen=True)
class Tick:
    status: dict  # the status fields the tick observed, phase and conditions included
    phase: str
    result: str  # a metrics.Result


def tick(cluster: Cluster, reporter: Reporter, defaults: OperatorDefaults, body: dict, logger: logging.Logger) -> Tick:
    status = dict(body.get("status") or {})
    generation = body["metadata"].get("generation")
    try:
        check_model_name(body["metadata"]["name"])
        model = parse_spec(body.get("spec") or {})
        defaults.check_images(model)
    except SpecError as error:
        conditions, phase = rollup(status.get("conditions"), spec_error=str(error))
        return Tick({"phase": phase, "conditions": conditions, "observedGeneration": generation}, phase,
                    metrics.Result.INVALID_SPEC)
    update = Reconciliation(cluster, reporter, defaults, body, model, logger).run()
    conditions, phase = rollup(update.pop("conditions"))
    return Tick({**update, "phase": phase, "conditions": conditions}, phase, metrics.Result.OK)


def serving_unchanged(reporter: Reporter, status: dict) -> bool:
    """For a model at rest: True unless serving's own status moved on from what status says
    (requests answered, completed, or no answer at all). One HTTPS request, no API call."""
    if status.get("phase") != Phase.SERVING:
        return True
    try:
        served = reporter.serving_status(status["access"]["serving"] + consts.SERVING_STATUS_PATH,
                                         status["tls"]["caCertificate"])
    except (KeyError, OSError, ValueError):
        return False
    return served.get("requestsServed", 0) == status.get("requestsServed", 0) and not served.get("completed")


def status_changes(old: dict, new: dict) -> dict:
    """The fields of `new` that differ from `old`: all a tick patches (nothing when nothing changed)."""
    return {key: value for key, value in new.items() if old.get(key) != value}


def adopt(manifest: dict, owner: dict) -> None:
    """Make `owner` the controller of `manifest`: the garbage collector deletes it with the owner,
    and teardown finds it by this reference."""
    reference = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    references = manifest["metadata"].setdefault("ownerReferences", [])
    if not any(ref.get("uid") == reference["uid"] for ref in references):
        references.append(reference)


class Reconciliation:
    """One tick for one PrivateModel whose spec parsed: run() returns the status fields observed."""

    def __init__(self, cluster: Cluster, reporter: Reporter, defaults: OperatorDefaults, body: dict,
                 model: PrivateModelSpec, logger: logging.Logger):
        self.kube, self.reporter, self.defaults, self.body, self.model = cluster, reporter, defaults, body, model
        self.name, self.namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        self.status, self.logger = dict(body.get("status") or {}), logger
        self.conditions = self.status.get("conditions") or []
        self.issuance: tls.Issuance | None = None
        self.update: dict = {}

    def run(self) -> dict:
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
            adopt(secret, self.body)
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
        # missing_sources keeps one of each, so the events of all pods go to it at once.
        return observe.missing_sources([event for pod in pods
                                        for event in self.kube.events(self.namespace, pod["metadata"]["name"])])

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
        if self.defaults.service_monitor:
            self._apply(build_serving_service_monitor(self.model, self.name, self.namespace, self.defaults))
        url = self.update["access"]["serving"]
        live = self.kube.get("Deployment", self.namespace, deployment["metadata"]["name"])
        if live is None or not observe.is_deployment_ready(live):
            self._condition(ConditionType.SERVING, False, Reason.SERVING_STARTING, "waiting for the serving pod to be ready")
            return
        try:
            served = self.reporter.serving_status(url + consts.SERVING_STATUS_PATH, self.issuance.ca_certificate)
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
        for kind in ("Deployment", "Service", *(("ServiceMonitor",) if self.defaults.service_monitor else ())):
            if self.kube.delete(kind, self.namespace, child_name(self.name, Component.SERVING)):
                self.logger.info("deleted serving %s", kind)

    def _apply(self, manifest: dict) -> None:
        adopt(manifest, self.body)
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
        self.reporter.event(event_type, reason, message)
