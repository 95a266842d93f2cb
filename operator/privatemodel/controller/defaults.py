"""What the operator fills in when a PrivateModel leaves it out, and which images a PrivateModel
may name; the chart sets both through env vars."""
import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from privatemodel.controller import consts
from privatemodel.controller.spec import PrivateModelSpec, SpecError

PULL_POLICIES = ("Always", "IfNotPresent", "Never")


@dataclass(frozen=True)
class OperatorDefaults:
    runtime_image: str = consts.DEFAULT_RUNTIME_IMAGE
    image_pull_policy: str = consts.DEFAULT_IMAGE_PULL_POLICY
    cluster_domain: str = consts.DEFAULT_CLUSTER_DOMAIN
    service_type: str = consts.DEFAULT_SERVICE_TYPE
    # Images a PrivateModel may name besides runtime_image: exact references, or prefixes ending in *.
    allowed_images: tuple[str, ...] = ()
    # A ServiceMonitor for each model's serving (the Prometheus Operator's CRDs must exist), labelled so.
    service_monitor: bool = False
    service_monitor_labels: dict = field(default_factory=dict)
    # Resources of pods whose PrivateModel sets none: players, and serving with the sharing Job.
    player_resources: dict = field(default_factory=lambda: copy.deepcopy(consts.DEFAULT_PLAYER_RESOURCES))
    serving_resources: dict = field(default_factory=lambda: copy.deepcopy(consts.DEFAULT_SERVING_RESOURCES))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "OperatorDefaults":
        """Read once at start-up; a bad value stops the operator there, not in a child later."""
        environ = os.environ if environ is None else environ
        defaults = cls(
            runtime_image=environ.get(consts.ENV_RUNTIME_IMAGE) or consts.DEFAULT_RUNTIME_IMAGE,
            image_pull_policy=environ.get(consts.ENV_IMAGE_PULL_POLICY) or consts.DEFAULT_IMAGE_PULL_POLICY,
            cluster_domain=environ.get(consts.ENV_CLUSTER_DOMAIN) or consts.DEFAULT_CLUSTER_DOMAIN,
            service_type=environ.get(consts.ENV_SERVICE_TYPE) or consts.DEFAULT_SERVICE_TYPE,
            allowed_images=tuple(i.strip() for i in environ.get(consts.ENV_ALLOWED_IMAGES, "").split(",") if i.strip()),
            service_monitor=environ.get(consts.ENV_SERVICE_MONITOR, "false") == "true",
            service_monitor_labels=_json_object(environ, consts.ENV_SERVICE_MONITOR_LABELS, {}),
            player_resources=_resources(environ, consts.ENV_PLAYER_RESOURCES, consts.DEFAULT_PLAYER_RESOURCES),
            serving_resources=_resources(environ, consts.ENV_SERVING_RESOURCES, consts.DEFAULT_SERVING_RESOURCES),
        )
        for variable, value, allowed in (
            (consts.ENV_IMAGE_PULL_POLICY, defaults.image_pull_policy, PULL_POLICIES),
            (consts.ENV_SERVICE_TYPE, defaults.service_type, consts.SERVICE_TYPES),
        ):
            if value not in allowed:
                raise ValueError(f"{variable}: must be one of {', '.join(allowed)}, got {value!r}")
        return defaults

    def image_allowed(self, image: str) -> bool:
        return image == self.runtime_image or any(
            image.startswith(allowed[:-1]) if allowed.endswith("*") else image == allowed
            for allowed in self.allowed_images)

    def check_images(self, spec: PrivateModelSpec) -> None:
        """The sharing Job mounts the model's Secret into spec.serving.image: a PrivateModel may
        only name images the operator's installer allowed (chart value runtime.allowedImages)."""
        for path, image in (("spec.serving.image", spec.serving.image), ("spec.players.image", spec.players.image)):
            if image is not None and not self.image_allowed(image):
                allowed = ", ".join((self.runtime_image, *self.allowed_images))
                raise SpecError(path, f"image {image!r} is not allowed by this operator (allowed: {allowed};"
                                      " the chart value runtime.allowedImages adds more)")


def _json_object(environ: Mapping[str, str], variable: str, default: dict) -> dict:
    text = environ.get(variable) or json.dumps(default)
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{variable}: not JSON ({error}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{variable}: must be a JSON object, got {text!r}")
    return value


def _resources(environ: Mapping[str, str], variable: str, default: dict) -> dict:
    resources = _json_object(environ, variable, default)
    if not set(resources) <= {"requests", "limits"}:
        raise ValueError(f"{variable}: must be an object with requests and/or limits, got {environ[variable]!r}")
    return resources
