"""`privatemodel`: the commands users and the operator's pods run."""
import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from privatemodel import contract
from privatemodel.runtime.serving.batching import DEFAULT_BATCH_WAIT_SECONDS

log = logging.getLogger("privatemodel")

EXIT_BAD_INPUT = 2  # the user's model, query or configuration is wrong
EXIT_UNAVAILABLE = 3  # a player or the serving endpoint cannot be reached


# Commands that run a TensorFlow server in this process: it must listen on loopback only.
_TENSORFLOW_SERVER_COMMANDS = ("player", "share", "serve")


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if argv is None and args.run.__name__.lstrip("_") in _TENSORFLOW_SERVER_COMMANDS:
        _preload_loopback(args)
    try:
        code = args.run(args)
    except Exception as error:  # noqa: BLE001 - every failure leaves as one clear line
        code = _report(error, getattr(args, "error_file", None))
    sys.exit(code or 0)


def _parser():
    parser = argparse.ArgumentParser(prog="privatemodel", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, TensorFlow's too")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name, run, help):
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    def config_option(sub):
        sub.add_argument("--config", required=True, metavar="HOSTMAP", help="hostmap JSON: party name -> HOST:PORT (and the TLS mesh)")

    def tls_option(sub, what):
        sub.add_argument("--tls-dir", help=f"this party's {contract.TLS_CA}, {contract.TLS_CERT}, {contract.TLS_KEY}: {what}")

    sub = command("player", _player, "run one SecureNN player (server0, server1 or server2)")
    sub.add_argument("name", metavar="NAME")
    config_option(sub)
    sub.add_argument("--state-dir", help="where this player keeps its share of the model (default ./privatemodel-NAME; one directory per player)")
    sub.add_argument("--threads", type=_positive, default=1,
                     help="TensorFlow threads for this player's ops (default 1: fastest when players share cores)")
    tls_option(sub, "for the TLS mesh and the ingress")
    sub.add_argument("--ingress-port", type=int, help="server0/server1: serve clients over HTTPS on this port")
    sub.add_argument("--ingress-host", default="0.0.0.0", help="address the ingress binds")
    sub.add_argument("--max-batch", type=_positive, default=contract.DEFAULT_MAX_BATCH, help="largest batch the ingress stages")

    sub = command("share", _share, "secret-share a Keras .h5 model onto the players (the model owner's step); "
                  "layers it cannot serve are refused first (`privatemodel layers` lists them)")
    sub.add_argument("--model", required=True, help="Keras .h5: full model, or weights only with --architecture")
    sub.add_argument("--architecture", help="Keras architecture JSON, for a weights-only .h5")
    config_option(sub)
    tls_option(sub, "to reach the players through the TLS mesh")
    sub.add_argument("--input-shape", type=_shape, help="expected input shape with batch, e.g. 1,28,28,1")
    sub.add_argument("--output-shape", type=_shape, help="expected output shape with batch, e.g. 1,10")
    sub.add_argument("--error-file", help="also write a failure's one-line reason here (e.g. /dev/termination-log)")

    command("layers", _layers, "the Keras layers private serving computes, drops, folds, leaves to the client or refuses")

    sub = command("serve", _serve, "serve private predictions from the shares on the players")
    config_option(sub)
    tls_option(sub, "required: the HTTPS endpoint's certificate (and the TLS mesh)")
    sub.add_argument("--port", type=int, default=contract.SERVING_PORT)
    sub.add_argument("--host", default="0.0.0.0", help="address the endpoint binds")
    sub.add_argument("--num-requests", type=_positive, help="answer this many requests, then exit 0")
    sub.add_argument("--wait-after-complete", action="store_true", help="after N requests refuse more but keep running until SIGTERM")
    sub.add_argument("--max-batch", type=_positive, default=contract.DEFAULT_MAX_BATCH, help="largest batch one request may carry")
    sub.add_argument("--warm-up", type=_sizes, default=[1], metavar="SIZES", help="batch sizes to compile before ready (default 1)")
    sub.add_argument("--warm-up-idle", type=_sizes, default=[], metavar="SIZES",
                     help="batch sizes to compile once ready, one at a time while no request waits (default none; "
                          f"the operator passes {','.join(map(str, contract.IDLE_WARM_UP_SIZES))})")
    sub.add_argument("--batch-wait-ms", type=_non_negative, default=1000 * DEFAULT_BATCH_WAIT_SECONDS, metavar="MS",
                     help="coalesce concurrent requests into one MPC step, delaying none by more than this "
                          "(default %(default)g; 0: only what is already queued)")
    sub.add_argument("--error-file", help="also write a failure's one-line reason here")

    sub = command("predict", _predict, "a private prediction: share the query, reconstruct the answer, here only")
    sub.add_argument("--access", required=True, metavar="FILE",
                     help=f"{contract.ACCESS_FILE}: the HTTPS URLs of serving and of server0's and server1's ingress, and the model's CA")
    sub.add_argument("--input", required=True, nargs="+", help=".npy array or .png image (one example or a batch)")
    sub.add_argument("--json", action="store_true", help="print JSON for scripts")
    sub.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the answer")

    sub = command("local", _local, "players as processes on this machine")
    sub.add_argument("action", choices=["up", "down", "status"])
    sub.add_argument("--dir", help="where the hostmap, PIDs and logs go (default ~/.cache/privatemodel/local)")
    sub.add_argument("--isolated", action="store_true",
                     help="up: each party in its own network namespace, joined by the TLS mesh, as on several hosts (root)")
    sub.add_argument("--manual", metavar="HOST0,HOST1,HOST2,CONTROLLER", type=_hosts,
                     help="print how to run the players on three hosts and share/serve on a fourth, over the TLS mesh")

    sub = command("certs", _certs, "a CA and one certificate per party, for players on several hosts")
    sub.add_argument("--out", required=True, help="directory: OUT/PARTY/ for each party, OUT/ca.crt for clients")

    sub = command("demo", _demo, "the whole story on this machine: train, share, serve 3 private predictions")
    sub.add_argument("--dir", help="working directory for players and logs (default: a fresh temporary one)")

    sub = command("bench", _bench, "latency and throughput: plaintext Keras, privatemodel, tf-encrypted's QueueServer")
    sub.add_argument("--output", default="build/bench.json")
    sub.add_argument("--requests", type=_positive, default=50, help="timed requests per configuration")
    sub.add_argument("--only", choices=["concurrency"], help="run only this part: concurrency, 8 clients sending batch-1 requests at once")
    sub.add_argument("--batch-wait-ms", type=_non_negative, metavar="MS", help="serve's --batch-wait-ms in the concurrency part (default: serve's)")
    return parser


def _player(args):
    from privatemodel.runtime.mpc import hostmap
    from privatemodel.runtime.player.run import run_player

    run_player(args.name, hostmap.load(args.config), args.state_dir, threads=args.threads, tls_dir=args.tls_dir,
               ingress_port=args.ingress_port, ingress_host=args.ingress_host, max_batch=args.max_batch)


def _share(args):
    from privatemodel.runtime.mpc import hostmap
    from privatemodel.runtime.owner.share import share_model

    manifest = share_model(args.model, hostmap.load(args.config), args.architecture, args.input_shape, args.output_shape, tls_dir=args.tls_dir)
    activation = manifest["model"]["output_activation"]
    client_step = f"; clients apply its final {activation} to the reconstructed logits" if activation else ""
    print(f"shared {args.model} as {manifest['share_id']}{client_step}")


def _layers(args):
    from privatemodel.runtime.owner.layers import table_text

    print(table_text())


def _serve(args):
    from privatemodel.runtime.mpc import hostmap
    from privatemodel.runtime.serving.endpoint import ServingEndpoint
    from privatemodel.runtime.serving.server import PrivateModelServer

    if args.tls_dir is None:
        raise hostmap.HostmapError("serve needs --tls-dir: clients reach it over HTTPS only")
    server = PrivateModelServer(hostmap.load(args.config), max_batch=args.max_batch, tls_dir=args.tls_dir, work_dir=os.environ.get("TMPDIR", "/tmp"))
    endpoint = ServingEndpoint(server, args.port, args.tls_dir, args.host, args.num_requests, args.wait_after_complete,
                               batch_wait=args.batch_wait_ms / 1000,
                               idle_warm_up=[size for size in args.warm_up_idle if size <= args.max_batch])
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: endpoint.finished.set())
    endpoint.start_http()
    server.load()
    server.warm_up([size for size in args.warm_up if size <= args.max_batch])
    endpoint.ready = True
    log.info("ready for clients on port %d", endpoint.port)
    endpoint.run(check_players=server.check_players)
    if endpoint.failure:
        code = _report(endpoint.failure, args.error_file)
        # A graph may still wait on the lost player; don't let interpreter shutdown wait for it.
        logging.shutdown()
        os._exit(code)
    log.info("stopped after %d request(s)", endpoint.requests_served)


def _predict(args):
    import numpy as np

    from privatemodel.runtime.client.client import PrivateClient
    from privatemodel.runtime.client.inputs import load_query

    client = PrivateClient(args.access, timeout=args.timeout)
    batch = np.concatenate([load_query(path, client.input_shape) for path in args.input])
    outputs = client.predict(batch)
    classes = outputs.reshape(len(outputs), -1).argmax(axis=1)
    kind = "probabilities" if client.output_activation else "logits"
    if args.json:
        print(json.dumps({kind: outputs.tolist(), "classes": classes.tolist(), "output_activation": client.output_activation,
                          "triple": client.last_triple}))
        return
    if client.output_activation:
        print(f"probabilities ({client.output_activation} applied in the client to the reconstructed logits)")
    for index, (row, label) in enumerate(zip(outputs, classes)):
        values = " ".join(f"{v:+.3f}" for v in row.ravel())
        print(f"example {index}: class {label}  {kind} [{values}]")


def _local(args):
    from privatemodel.runtime.local.cluster import LocalCluster

    cluster = LocalCluster(args.dir, isolated=args.isolated)
    if args.manual:
        print(cluster.manual_commands(args.manual))
    elif args.action == "up":
        cluster.up()
        print(f"players up; hostmap: {cluster.hostmap_path}")
    elif args.action == "down":
        stopped = cluster.down()
        print(f"stopped {', '.join(stopped)}" if stopped else "no local players were running")
    else:
        print(json.dumps(cluster.status(), indent=2))


def _certs(args):
    from privatemodel import pki

    out = Path(args.out)
    ca_key, ca_certificate = pki.new_ca(out.resolve().name)
    for party in contract.PARTY_NAMES:
        key, certificate = pki.issue(ca_key, ca_certificate, party)
        pki.write_tls_dir(out / party, ca_certificate, key, certificate)
    (out / contract.TLS_CA).write_bytes(ca_certificate)
    print(f"certificates for {', '.join(contract.PARTY_NAMES)} in {out}/PARTY/; clients need {out / contract.TLS_CA}")


def _preload_loopback(args):
    """Re-run this command with TensorFlow's server held on loopback; its HTTPS ports stay public."""
    from privatemodel.runtime.mpc import loopback

    public_ports = [port for port in (getattr(args, "ingress_port", None), getattr(args, "port", None)) if port]
    loopback.ensure_preloaded(public_ports)


def _demo(args):
    from privatemodel.runtime.demo import run_demo

    return run_demo(args.dir)


def _bench(args):
    from privatemodel.bench import run_bench

    run_bench(Path(args.output), args.requests, args.only, args.batch_wait_ms)


def _report(error, error_file):
    from privatemodel.runtime.client.client import AccessError, QueryError, ServingError
    from privatemodel.runtime.mpc.loopback import LoopbackError
    from privatemodel.runtime.mpc.mesh import MeshError
    from privatemodel.runtime.mpc.hostmap import HostmapError, PlayerUnreachable
    from privatemodel.runtime.client.inputs import InputFileError
    from privatemodel.runtime.owner.model import ModelError
    from privatemodel.runtime.serving.server import RequestError, SharesReplaced
    from privatemodel.runtime.player.storage import NoSharesError, StateDirInUse

    if isinstance(error, (ModelError, HostmapError, QueryError, InputFileError, RequestError, NoSharesError, StateDirInUse,
                          AccessError, LoopbackError)):
        code = EXIT_BAD_INPUT
    elif isinstance(error, (PlayerUnreachable, ServingError, TimeoutError, MeshError, SharesReplaced)):
        code = EXIT_UNAVAILABLE
    else:
        log.exception("unexpected failure")
        code = 1
    message = f"{type(error).__name__}: {error}" if code == 1 else str(error)
    print(f"error: {message}", file=sys.stderr)
    if error_file:
        Path(error_file).write_text(message + "\n")
    return code


def _shape(text):
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,28,28,1, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"dimensions must be positive, got {text!r}")
    return shape


def _sizes(text):
    return list(_shape(text))


def _hosts(text):
    hosts = text.split(",")
    if len(hosts) != 4 or not all(hosts):
        raise argparse.ArgumentTypeError(f"expected four hosts HOST0,HOST1,HOST2,CONTROLLER, got {text!r}")
    return hosts


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number from 0, got {text}")
    return value


def _configure_logging(verbose):
    # TensorFlow's C++ start-up chatter hides the lines users need; -v brings it back.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        for noisy in ("tensorflow", "absl", "h5py"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
