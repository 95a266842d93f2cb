"""The sharing Job: the model owner's step, and the only pod that ever mounts the model."""
import dataclasses
import hashlib
import json

from privatemodel import contract
from privatemodel.controller import consts
from privatemodel.controller.consts import Component
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import Triple
from privatemodel.controller.objects.pod import metadata, runtime_container, runtime_pod_spec
from privatemodel.controller.spec import FileSource, PrivateModelSpec, SourceKind
from privatemodel.controller.tls import Issuance

MODEL_VOLUME = "model"
ARCHITECTURE_VOLUME = "architecture"


def sharing_digest(spec: PrivateModelSpec, player_uids: list[str]) -> str:
    """What the players' shares depend on: the model source, the shapes, and which pods hold them.

    Equal digests mean the shares in place are current. A replaced player pod (its emptyDir, and
    so its share, is gone) or a new source changes the digest, and with it the Job's name, so a new
    Job shares again. Serving-only edits (numRequests, resources) leave the shares alone.
    """
    if len(player_uids) != len(contract.PLAYER_NAMES):
        raise ValueError(f"expected {len(contract.PLAYER_NAMES)} player pod UIDs, in player order, got {player_uids!r}")
    inputs = {
        "protocol": spec.protocol,
        "inputShape": spec.input_shape,
        "outputShape": spec.output_shape,
        "model": dataclasses.asdict(spec.model),
        "architecture": spec.architecture and dataclasses.asdict(spec.architecture),
        "playerUIDs": list(player_uids),
    }
    encoded = json.dumps(inputs, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[: consts.SHARING_DIGEST_LENGTH]


def build_sharing_job(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults, player_uids: list[str],
    issuance: Issuance, triple: int = 0,
) -> dict:
    """A Job that shares the model onto the player pods with these UIDs (server0, server1, server2):
    a fresh secret sharing for each triple, never a copy of another triple's shares."""
    names = Triple(model_name, triple)
    digest = sharing_digest(spec, player_uids)
    volumes = [_source_volume(MODEL_VOLUME, spec.model)]
    mounts = [_source_mount(MODEL_VOLUME, consts.MODEL_DIR)]
    command = [
        consts.RUNTIME_COMMAND, "share",
        "--model", f"{consts.MODEL_DIR}/{spec.model.path}",
        "--config", consts.HOSTMAP_PATH,
        "--tls-dir", consts.TLS_DIR,
        "--input-shape", _shape_argument(spec.input_shape),
        "--output-shape", _shape_argument(spec.output_shape),
        "--error-file", consts.TERMINATION_LOG,
    ]  # fmt: skip
    if spec.architecture:
        # Both files on one claim: mount that claim twice rather than list it as two volumes.
        same_claim = spec.architecture.kind == spec.model.kind == SourceKind.PVC and (
            spec.architecture.name == spec.model.name
        )
        volume = MODEL_VOLUME if same_claim else ARCHITECTURE_VOLUME
        if not same_claim:
            volumes.append(_source_volume(volume, spec.architecture))
        mounts.append(_source_mount(volume, consts.ARCHITECTURE_DIR))
        command += ["--architecture", f"{consts.ARCHITECTURE_DIR}/{spec.architecture.path}"]
    container = runtime_container(
        "share",
        command,
        spec.serving,
        defaults,
        mounts=mounts,
        default_resources=defaults.serving_resources,
        terminationMessagePath=consts.TERMINATION_LOG,
        # `share` writes its one-line reason there; a crash before that leaves the log's tail.
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(
            names.name(Component.SHARING, digest),
            namespace,
            _job_labels(names, digest),
            annotations={consts.ANNOTATION_PLAYER_UIDS: json.dumps(list(player_uids))},
        ),
        "spec": {
            "backoffLimit": consts.SHARING_BACKOFF_LIMIT,
            "activeDeadlineSeconds": consts.SHARING_DEADLINE_SECONDS,
            "template": {
                "metadata": {"labels": _job_labels(names, digest)},
                # Never: each failed attempt stays a pod whose termination message says why.
                "spec": runtime_pod_spec(names.prefix, container, spec.serving, volumes,
                                         tls_secret=issuance.secret_name(names.prefix, consts.SHARING_PARTY),
                                         restartPolicy="Never"),
            },
        },
    }


def _job_labels(names: Triple, digest: str) -> dict:
    return {**names.labels(Component.SHARING), consts.LABEL_SHARING_DIGEST: digest}


def _shape_argument(shape: tuple[int, ...]) -> str:
    return ",".join(str(dimension) for dimension in shape)


def _source_volume(name: str, source: FileSource) -> dict:
    """Only the one file the Job needs; 0440 lets the runtime user read it through fsGroup."""
    item = [{"key": source.path, "path": source.path}]
    if source.kind == SourceKind.SECRET:
        return {"name": name, "secret": {"secretName": source.name, "items": item, "defaultMode": 0o440}}
    if source.kind == SourceKind.CONFIG_MAP:
        return {"name": name, "configMap": {"name": source.name, "items": item, "defaultMode": 0o440}}
    return {"name": name, "persistentVolumeClaim": {"claimName": source.name, "readOnly": True}}


def _source_mount(volume: str, directory: str) -> dict:
    return {"name": volume, "mountPath": directory, "readOnly": True}
