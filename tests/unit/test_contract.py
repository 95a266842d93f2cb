"""The contract between the operator and the runtime, checked without a cluster: every command the
operator writes into a pod parses with the runtime's own CLI, with the ports and paths both sides
take from privatemodel.contract; and the operator's code never imports TensorFlow."""
import subprocess
import sys

import pytest

from privatemodel import cli, contract
from privatemodel.controller import consts
from privatemodel.controller.spec import SpecError, parse_spec
from unit.test_controller_objects import MNIST, PLAYERS, build_all, only_container

WEIGHTS_ONLY = {**MNIST, "model": {"secretKeyRef": {"name": "w", "key": "weights.h5"},
                                   "architecture": {"configMapKeyRef": {"name": "a", "key": "model.json"}}}}


def parsed(obj):
    command = only_container(obj)["command"]
    assert command[0] == consts.RUNTIME_COMMAND
    return cli._parser().parse_args(command[1:])


def test_player_commands_parse_with_the_runtime_cli():
    objects = build_all()
    for player in PLAYERS:
        args = parsed(objects[player])
        assert (args.name, args.config, args.tls_dir, args.state_dir) == (
            player, consts.HOSTMAP_PATH, consts.TLS_DIR, consts.STATE_DIR)
        # Clients reach only the share holders' ingress, on the port the operator's Services expose.
        assert args.ingress_port == (contract.INGRESS_PORT if player in contract.SHARE_HOLDERS else None)


def test_sharing_and_serving_commands_parse_with_the_runtime_cli():
    for body in (MNIST, WEIGHTS_ONLY):
        objects = build_all(body)
        share = parsed(objects["sharing"])
        assert (share.config, share.tls_dir, share.error_file) == (consts.HOSTMAP_PATH, consts.TLS_DIR,
                                                                  consts.TERMINATION_LOG)
        assert share.model.startswith(consts.MODEL_DIR + "/")
        assert (share.architecture is None) == (body is MNIST)
        serve = parsed(objects["serving"])
        assert (serve.port, serve.num_requests, serve.wait_after_complete) == (contract.SERVING_PORT, 3, True)
        assert serve.warm_up_idle == list(contract.IDLE_WARM_UP_SIZES)
        assert max(serve.warm_up_idle) <= serve.max_batch


def test_the_spec_allows_no_batch_larger_than_serving_accepts():
    largest = cli._parser().parse_args(["serve", "--config", "h.json"]).max_batch
    parse_spec({**MNIST, "inputShape": [largest, 28, 28, 1], "outputShape": [largest, 10]})
    with pytest.raises(SpecError, match=rf"spec.inputShape\[0\]: the batch size must be at most {largest}"):
        parse_spec({**MNIST, "inputShape": [largest + 1, 28, 28, 1], "outputShape": [largest + 1, 10]})


def test_the_operator_never_imports_tensorflow():
    code = ("import sys, privatemodel.controller.handlers; "
            "sys.exit('tensorflow imported' if 'tensorflow' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
