"""One reconcile tick of one PrivateModel, in small steps, each gated on the one before:
  certificates (once; a tick of their own) -> mesh and players (hostmap, NetworkPolicies,
  Services, a StatefulSet per player, their disruption budget) -> sharing Job -> serving.
With spec.serving.replicas > 1 the steps after the certificates run for each player triple on its
own (each its own CA, players, sharing and serving), and the model's conditions sum them up.

The tick is level-triggered: it reads the children, applies what the spec asks for and returns
the status it observed; a restarted operator simply ticks again, so it never duplicates children.
It reads and writes through a Cluster (kube.Kube; an in-memory fake in the unit tests) and
reports through a Reporter (events, and serving's HTTPS status). Nothing here knows kopf.
"""
import logging
from dataclasses import dataclass
from typing import Protocol

from privatemodel import contract
from privatemodel.controller import consts, kube, metrics, observe, tls
from privatemodel.controller.conditions import find_condition, is_true, remove_condition, rollup, set_condition
from privatemodel.controller.consts import Component, ConditionType, Phase, Reason
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import Triple, selector_labels
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
from privatemodel.controller.objects.tls import build_access_config_map, build_tls_secret, triple_access
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
        model = parse_spec(body.get("spec") or {})
        check_model_name(body["metadata"]["name"], model.serving.replicas)
        defaults.check_images(model)
    except SpecError as error:
        conditions, phase = rollup(status.get("conditions"), spec_error=str(error))
        return Tick({"phase": phase, "conditions": conditions, "observedGeneration": generation}, phase,
                    metrics.Result.INVALID_SPEC)
    update = Reconciliation(cluster, reporter, defaults, body, model, logger).run()
    conditions, phase = rollup(update.pop("conditions"))
    return Tick({**update, "phase": phase, "conditions": conditions}, phase, metrics.Result.OK)


def serving_unchanged(reporter: Reporter, status: dict) -> bool:
    """For a model at rest: True unless a triple's serving status moved on from what status says
    (requests answered, completed, or no answer at all). One HTTPS request per triple, no API call."""
    if status.get("phase") != Phase.SERVING:
        return True
    for entry in status.get("triples") or [{}]:
        try:
            served = reporter.serving_status(entry["access"]["serving"] + consts.SERVING_STATUS_PATH,
                                             triple_memory(status, entry["triple"])["tls"]["caCertificate"])
        except (KeyError, OSError, ValueError):
            return False
        if served.get("requestsServed", 0) != entry.get("requestsServed", 0) or served.get("completed"):
            return False
    return True


# What the operator keeps of each triple between ticks. Triple 0's stays at the root of status,
# where it was before scale-out (an upgraded operator finds it there); the others' in status.triples.
TRIPLE_MEMORY = ("tls", "sharedDigest", "sharedPlayerUIDs", "sharingJob")


def triple_memory(status: dict, triple: int) -> dict:
    if triple == 0:
        return status
    return next((entry for entry in status.get("triples") or () if entry.get("triple") == triple), {})


def status_changes(old: dict, new: dict) -> dict:
    """The fields of `new` that differ from `old`: all a tick patches (nothing when nothing changed)."""
    return {key: value for key, value in new.items() if old.get(key) != value}


def adopt(manifest: dict, owner: dict, block_owner_deletion: bool = True) -> None:
    """Make `owner` the controller of `manifest`: the garbage collector deletes it with the owner,
    and teardown finds it by this reference."""
    reference = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    if block_owner_deletion:
        reference["blockOwnerDeletion"] = True
    references = manifest["metadata"].setdefault("ownerReferences", [])
    if not any(ref.get("uid") == reference["uid"] for ref in references):
        references.append(reference)


@dataclass(frozen=True)
class Verdict:
    """What one triple says about one condition type."""

    status: bool
    reason: str
    message: str


@dataclass(frozen=True)
class TripleOutcome:
    players: observe.Players
    # ConditionType -> Verdict; WeightsShared and Serving are absent once the model completed.
    verdicts: dict

    @property
    def serves(self) -> bool:
        serving = self.verdicts.get(ConditionType.SERVING)
        return serving is not None and serving.status

    def blocking(self) -> tuple[str, Verdict] | None:
        """The first condition that keeps this triple from serving."""
        return next(((t, v) for t, v in self.verdicts.items() if not v.status), None)


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
        # Each triple's status entry (status.triples), as this tick leaves it.
        self.entries: dict[int, dict] = {}

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
        replicas = self.model.serving.replicas
        self._remove_triples_from(replicas)
        issuances, issued_now = [self.issuance], set()
        for triple in range(1, replicas):
            issuance = tls.Issuance.from_status(triple_memory(self.status, triple))
            if issuance is None:
                # As for the model's first CA: recorded in status before any pod mounts its Secrets.
                issuance = self._issue_triple(triple)
                issued_now.add(triple)
            issuances.append(issuance)
        self._access(issuances)
        self._apply(build_players_disruption_budget(self.model, self.name, self.namespace, self.defaults,
                                                    self.kube.pdb_api_version))
        pods = self.kube.list("Pod", self.namespace, selector_labels(self.name, Component.PLAYERS))
        completed = self._completed_this_generation()
        outcomes = [self._triple(triple, issuance, pods, completed, starting=triple in issued_now)
                    for triple, issuance in enumerate(issuances)]
        self._sum_up(outcomes)
        self.update["triples"] = [self.entries[triple] for triple in sorted(self.entries)]

    def _triple(self, triple: int, issuance: tls.Issuance, pods: list[dict], completed: bool,
                starting: bool) -> TripleOutcome:
        """Players -> sharing -> serving of one triple; what it says about each condition."""
        memory = triple_memory(self.status, triple)
        entry = self.entries.setdefault(triple, self._entry(triple))
        urls = triple_access(self.name, self.namespace, self.defaults, triple, issuance)
        urls.pop("ca")  # in the triple's tls
        entry.update(triple=triple, access=urls)
        if starting:
            players = observe.Players((None,) * len(contract.PLAYER_NAMES))
            entry["readyPlayers"] = players.summary
            return TripleOutcome(players, {
                ConditionType.WEIGHTS_SHARED: Verdict(False, Reason.WAITING_FOR_PLAYERS, "issuing its certificates"),
                ConditionType.SERVING: Verdict(False, Reason.WAITING_FOR_SHARES, "waiting for the weights to be shared")})
        players = self._players(triple, issuance, pods)
        entry["readyPlayers"] = players.summary
        if completed:
            # Answered its numRequests; players keep their shares until the model is deleted.
            self._stop_serving(triple)
            return TripleOutcome(players, {})
        shared = self._shared_digest(triple, issuance, players, memory)
        if isinstance(shared, Verdict):
            self._stop_serving(triple)
            return TripleOutcome(players, {ConditionType.WEIGHTS_SHARED: shared, ConditionType.SERVING: Verdict(
                False, Reason.WAITING_FOR_SHARES, "waiting for the weights to be shared")})
        digest, weights = shared
        return TripleOutcome(players, {ConditionType.WEIGHTS_SHARED: weights,
                                       ConditionType.SERVING: self._serving(triple, issuance, digest)})

    def _entry(self, triple: int) -> dict:
        """A copy of the triple's status entry of the last tick (triple 0's count, before scale-out, at the root)."""
        entry = next((e for e in self.status.get("triples") or () if e.get("triple") == triple), None)
        if entry is None and triple == 0 and "requestsServed" in self.status:
            return {"requestsServed": self.status["requestsServed"]}
        return dict(entry or {})

    def _remember(self, triple: int, **fields) -> None:
        """Keep fields of a triple for the next tick: triple 0's at the root of status."""
        (self.update if triple == 0 else self.entries[triple]).update(fields)

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

    def _issue_triple(self, triple: int) -> tls.Issuance:
        """A triple's own CA and Secrets, owned by its hostmap ConfigMap: the operator may not delete
        Secrets, so removing the triple's ConfigMap (scaling down) is what removes them."""
        hostmap = build_hostmap_config_map(self.model, self.name, self.namespace, self.defaults, triple)
        self._apply(hostmap)
        anchor = self.kube.get("ConfigMap", self.namespace, hostmap["metadata"]["name"])
        names = Triple(self.name, triple)
        issuance, parties = tls.issue(names.prefix)
        for party, (key, certificate) in parties.items():
            secret = build_tls_secret(self.name, self.namespace, issuance, party, key, certificate, triple)
            # Not blocking: the operator may not set finalizers on ConfigMaps.
            adopt(secret, anchor, block_owner_deletion=False)
            self.kube.create(secret)
        self._event("Normal", "CertificatesIssued", f"issued a CA ({issuance.issuer}) and certificates for"
                                                    f" {', '.join(contract.PARTY_NAMES)} of triple {triple}")
        self.entries[triple] = {**self._entry(triple), "triple": triple, "tls": issuance.to_status()}
        return issuance

    def _remove_triples_from(self, replicas: int) -> None:
        """Scaled down: delete every child of the triples numbered `replicas` and up (their pods and,
        through their hostmaps, their Secrets follow); each keeps its status entry until none is left."""
        for entry in self.status.get("triples") or ():
            triple = entry.get("triple", 0)
            if triple < replicas:
                continue
            remaining = []
            labels = {**selector_labels(self.name), consts.LABEL_TRIPLE: str(triple)}
            for kind in kube.CHILD_KINDS:
                for child in observe.owned_by(self.kube.list(kind, self.namespace, labels), self.body["metadata"]["uid"]):
                    remaining.append(child)
                    self.kube.delete(kind, self.namespace, child["metadata"]["name"])
            if remaining:
                self.entries[triple] = entry
                self._event("Normal", "TripleRemoved", f"spec.serving.replicas is {replicas}: deleting triple"
                                                       f" {triple}'s players, sharing and serving")

    def _access(self, issuances: list[tls.Issuance]) -> None:
        config_map = build_access_config_map(self.model, self.name, self.namespace, self.defaults, issuances)
        self._apply(config_map)
        urls = triple_access(self.name, self.namespace, self.defaults, 0, self.issuance)
        urls.pop("ca")  # in status.tls already
        self.update["access"] = {"configMap": config_map["metadata"]["name"], **urls}

    def _players(self, triple: int, issuance: tls.Issuance, pods: list[dict]) -> observe.Players:
        build = (self.model, self.name, self.namespace, self.defaults)
        children = [build_hostmap_config_map(*build, triple), *build_network_policies(*build, triple),
                    build_players_service(*build, triple)]
        children += [build_mesh_service(*build, controller, triple) for controller in contract.CONTROLLER_NAMES]
        children += [build_ingress_service(*build, player, triple) for player in contract.SHARE_HOLDERS]
        children += [build_player_stateful_set(*build, player, issuance, triple) for player in contract.PLAYER_NAMES]
        for child in children:
            self._apply(child)
        return observe.players_from_pods(Triple(self.name, triple).prefix, pods)

    def _completed_this_generation(self) -> bool:
        serving = find_condition(self.conditions, ConditionType.SERVING)
        completed = serving is not None and serving.get("reason") == Reason.REQUESTS_COMPLETED
        # An edited spec (a new generation) is served anew.
        return completed and self.status.get("observedGeneration") == self.body["metadata"].get("generation")

    def _shared_digest(self, triple: int, issuance: tls.Issuance, players: observe.Players,
                       memory: dict) -> tuple[str, Verdict] | Verdict:
        """(the digest of the shares in place, the WeightsShared verdict) when they are of the current
        model and players; otherwise why not (a verdict), after driving the sharing Job one step."""
        names = Triple(self.name, triple)
        uids = players.uids
        digest = uids and sharing_digest(self.model, uids)
        job_name = digest and names.name(Component.SHARING, digest)
        if digest and digest == memory.get("sharedDigest"):
            return digest, self._shared(job_name)
        lost = bool(memory.get("sharedDigest"))
        if not players.all_ready:
            if lost:
                return Verdict(False, Reason.SHARES_LOST,
                               "a player pod holding a share was replaced; sharing again once all players are ready")
            return Verdict(False, Reason.WAITING_FOR_PLAYERS, f"waiting for the player pods ({players.summary} ready)")
        self._delete_stale_sharing_jobs(names, digest)
        job = self.kube.get("Job", self.namespace, job_name)
        if job is None:
            self._apply(build_sharing_job(self.model, self.name, self.namespace, self.defaults, uids, issuance, triple))
            self._event("Normal", "SharingStarted", f"sharing the model onto the players with job {job_name}")
            job = {}  # just created: no status yet, so running
        self._remember(triple, sharingJob=job_name)
        outcome = observe.job_outcome(job)
        if outcome == observe.JobOutcome.SUCCEEDED:
            self._remember(triple, sharedDigest=digest, sharedPlayerUIDs=uids)
            return digest, self._shared(job_name)
        if outcome == observe.JobOutcome.FAILED:
            pods = self.kube.list("Pod", self.namespace, {"job-name": job_name})
            why = observe.job_failure_message(job, pods)
            return Verdict(False, Reason.SHARING_FAILED,
                           f"job {job_name}: {why} (fix the model or spec; deleting the job retries)")
        pods = self.kube.list("Pod", self.namespace, {"job-name": job_name})
        waiting = observe.waiting_reasons(pods)
        if waiting and (missing := self._missing_sources(pods)):
            return Verdict(False, Reason.MODEL_SOURCE_NOT_FOUND,
                           f"job {job_name} cannot read the model: {'; '.join(missing)}"
                           " (create it, or fix spec.model; sharing starts once it exists)")
        reason = Reason.SHARES_LOST if lost else Reason.SHARING_IN_PROGRESS
        # A pod stuck before start (a missing model Secret: ContainerCreating) says so here.
        detail = f" (waiting: {', '.join(waiting)}; `kubectl describe` the pod for why)" if waiting else ""
        return Verdict(False, reason, f"job {job_name} is sharing the model{detail}")

    def _missing_sources(self, pods: list[dict]) -> list[str]:
        """What the waiting sharing pods' events say is missing (the operator cannot read Secrets)."""
        # missing_sources keeps one of each, so the events of all pods go to it at once.
        return observe.missing_sources([event for pod in pods
                                        for event in self.kube.events(self.namespace, pod["metadata"]["name"])])

    @staticmethod
    def _shared(job_name: str) -> Verdict:
        return Verdict(True, Reason.SHARED, f"shared onto the players by job {job_name}")

    def _delete_stale_sharing_jobs(self, names: Triple, digest: str) -> None:
        jobs = self.kube.list("Job", self.namespace, names.selector(Component.SHARING))
        for job in observe.owned_by(jobs, self.body["metadata"]["uid"]):
            if job["metadata"].get("labels", {}).get(consts.LABEL_SHARING_DIGEST) != digest:
                self.kube.delete("Job", self.namespace, job["metadata"]["name"])

    def _serving(self, triple: int, issuance: tls.Issuance, shared_digest: str) -> Verdict:
        build = (self.model, self.name, self.namespace, self.defaults)
        deployment = build_serving_deployment(*build, shared_digest, issuance, triple)
        self._apply(deployment)
        self._apply(build_serving_service(*build, triple))
        if self.defaults.service_monitor:
            self._apply(build_serving_service_monitor(*build, triple))
        url = self.entries[triple]["access"]["serving"]
        live = self.kube.get("Deployment", self.namespace, deployment["metadata"]["name"])
        if live is None or not observe.is_deployment_ready(live):
            return Verdict(False, Reason.SERVING_STARTING, "waiting for the serving pod to be ready")
        try:
            served = self.reporter.serving_status(url + consts.SERVING_STATUS_PATH, issuance.ca_certificate)
        except (OSError, ValueError) as error:
            return Verdict(False, Reason.SERVING_STARTING, f"{url} does not answer: {error}")
        self.entries[triple]["requestsServed"] = served.get("requestsServed", 0)
        if served.get("completed"):
            self._stop_serving(triple)
            return Verdict(False, Reason.REQUESTS_COMPLETED,
                           f"answered all {served.get('numRequests')} requests; serving stopped")
        return Verdict(True, Reason.SERVING_READY, f"serving private predictions at {url}")

    def _stop_serving(self, triple: int) -> None:
        """No serve process may drive the players while their shares are replaced or after the last request."""
        name = Triple(self.name, triple).name(Component.SERVING)
        for kind in ("Deployment", "Service", *(("ServiceMonitor",) if self.defaults.service_monitor else ())):
            if self.kube.delete(kind, self.namespace, name):
                self.logger.info("deleted serving %s %s", kind, name)

    def _sum_up(self, outcomes: list[TripleOutcome]) -> None:
        """The model's conditions from its triples': one triple's own words when there is one."""
        ready = sum(outcome.players.ready_count for outcome in outcomes)
        players = f"{ready}/{len(contract.PLAYER_NAMES) * len(outcomes)}"
        self.update["readyPlayers"] = players
        self.update["requestsServed"] = sum(entry.get("requestsServed", 0) for entry in self.entries.values()
                                            if entry["triple"] < len(outcomes))
        not_ready = [f"triple {t}: {o.players.summary}" for t, o in enumerate(outcomes) if not o.players.all_ready]
        if not not_ready:
            self._condition(ConditionType.PLAYERS_READY, True, Reason.PLAYERS_READY, f"{players} player pods ready")
        else:
            detail = f" ({', '.join(not_ready)})" if len(outcomes) > 1 else ""
            self._condition(ConditionType.PLAYERS_READY, False, Reason.PLAYERS_STARTING,
                            f"{players} player pods ready{detail}")
        if not outcomes[0].verdicts:
            return  # completed: WeightsShared and Serving stay as they were
        self._set(ConditionType.WEIGHTS_SHARED, _combined([o.verdicts[ConditionType.WEIGHTS_SHARED] for o in outcomes]))
        serving = [o.verdicts[ConditionType.SERVING] for o in outcomes]
        serving_count = sum(o.serves for o in outcomes)
        if len(outcomes) == 1:
            self._set(ConditionType.SERVING, serving[0])
            self.conditions = remove_condition(self.conditions, ConditionType.DEGRADED)
            return
        # All triples serve before the model first does; from then on, any one triple keeps it serving.
        if serving_count == len(outcomes) or (serving_count and is_true(self.conditions, ConditionType.SERVING)):
            self._condition(ConditionType.SERVING, True, Reason.SERVING_READY,
                            f"{serving_count}/{len(outcomes)} triples serve private predictions")
        else:
            self._set(ConditionType.SERVING, _combined(serving))
        self._degraded(outcomes, serving_count)

    def _degraded(self, outcomes: list[TripleOutcome], serving_count: int) -> None:
        if serving_count == len(outcomes):
            self._condition(ConditionType.DEGRADED, False, Reason.ALL_TRIPLES_SERVING,
                            f"all {len(outcomes)} triples serve")
        elif not is_true(self.conditions, ConditionType.SERVING):
            self._condition(ConditionType.DEGRADED, False, Reason.NOT_SERVING, "the model does not serve yet (see Serving)")
        else:
            lost = [(triple, *outcome.blocking()) for triple, outcome in enumerate(outcomes) if not outcome.serves]
            message = "; ".join(f"triple {triple} does not serve: {condition_type}: {verdict.message}"
                                for triple, condition_type, verdict in lost)
            self._condition(ConditionType.DEGRADED, True, lost[0][2].reason,
                            f"{message} ({serving_count}/{len(outcomes)} triples serve)")

    def _apply(self, manifest: dict) -> None:
        adopt(manifest, self.body)
        result = self.kube.apply(manifest)
        if result == "reverted":
            metrics.DRIFT_REVERTED.labels(manifest["kind"]).inc()
            self._event("Warning", "DriftReverted",
                        f"{manifest['kind']} {manifest['metadata']['name']} was changed by hand; restored as the spec says")
        elif result != "unchanged":
            self.logger.info("%s %s %s", result, manifest["kind"], manifest["metadata"]["name"])

    def _set(self, condition_type: str, verdict: Verdict) -> None:
        self._condition(condition_type, verdict.status, verdict.reason, verdict.message)

    def _condition(self, condition_type: str, status: bool, reason: str, message: str) -> None:
        before = find_condition(self.conditions, condition_type)
        self.conditions = set_condition(self.conditions, condition_type, status, reason, message)
        if before is None or before.get("reason") != reason or before.get("status") != ("True" if status else "False"):
            warning = (reason in consts.FAILURE_REASONS or reason == Reason.SHARES_LOST
                       or (condition_type == ConditionType.DEGRADED and status))
            self._event("Warning" if warning else "Normal", reason, f"{condition_type}: {message}")

    def _event(self, event_type: str, reason: str, message: str) -> None:
        self.logger.info("%s: %s", reason, message)
        self.reporter.event(event_type, reason, message)


def _combined(verdicts: list[Verdict]) -> Verdict:
    """One verdict for the model from its triples': the only one as it is; else True when all are,
    or the first that is not (one that needs the user first), naming its triple."""
    if len(verdicts) == 1:
        return verdicts[0]
    if all(verdict.status for verdict in verdicts):
        return Verdict(True, verdicts[0].reason, "; ".join(f"triple {t}: {v.message}" for t, v in enumerate(verdicts)))
    failing = [(t, v) for t, v in enumerate(verdicts) if not v.status]
    triple, verdict = min(failing, key=lambda tv: tv[1].reason not in consts.FAILURE_REASONS)
    return Verdict(False, verdict.reason, f"triple {triple}: {verdict.message}")
