"""What the operator fills in when a PrivateModel leaves it out; the chart sets it through env vars."""
import os
from collections.abc import Mapping
from dataclasses import dataclass

from privatemodel.controller import consts

PULL_POLICIES = ("Always", "IfNotPresent", "Never")


@dataclass(frozen=True)
class OperatorDefaults:
    runtime_image: str = consts.DEFAULT_RUNTIME_IMAGE
    image_pull_policy: str = consts.DEFAULT_IMAGE_PULL_POLICY
    cluster_domain: str = consts.DEFAULT_CLUSTER_DOMAIN
    service_type: str = consts.DEFAULT_SERVICE_TYPE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "OperatorDefaults":
        """Read once at start-up; a bad value stops the operator there, not in a child later."""
        environ = os.environ if environ is None else environ
        defaults = cls(
            runtime_image=environ.get(consts.ENV_RUNTIME_IMAGE) or consts.DEFAULT_RUNTIME_IMAGE,
            image_pull_policy=environ.get(consts.ENV_IMAGE_PULL_POLICY) or consts.DEFAULT_IMAGE_PULL_POLICY,
            cluster_domain=environ.get(consts.ENV_CLUSTER_DOMAIN) or consts.DEFAULT_CLUSTER_DOMAIN,
            service_type=environ.get(consts.ENV_SERVICE_TYPE) or consts.DEFAULT_SERVICE_TYPE,
        )
        for variable, value, allowed in (
            (consts.ENV_IMAGE_PULL_POLICY, defaults.image_pull_policy, PULL_POLICIES),
            (consts.ENV_SERVICE_TYPE, defaults.service_type, consts.SERVICE_TYPES),
        ):
            if value not in allowed:
                raise ValueError(f"{variable}: must be one of {', '.join(allowed)}, got {value!r}")
        return defaults
