"""`privatemodel`: the commands users and the operator's pods run."""
import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

log = logging.getLogger("privatemodel")

EXIT_BAD_INPUT = 2  # the user's model, query or configuration is wrong
EXIT_UNAVAILABLE = 3  # a player or the serving endpoint cannot be reached


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
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
        sub.add_argument("--config", required=True, metavar="HOSTMAP", help="hostmap JSON: player name -> HOST:PORT")

    sub = command("player", _player, "run one SecureNN player (server0, server1 or server2)")
    sub.add_argument("name", metavar="NAME")
    config_option(sub)
    sub.add_argument("--state-dir", help="where this player keeps its share of the model (default ./privatemodel-NAME; one directory per player)")
    sub.add_argument("--threads", type=_positive, default=1,
                     help="TensorFlow threads for this player's ops (default 1: fastest when players share cores)")

    sub = command("share", _share, "secret-share a Keras .h5 model onto the players (the model owner's step); "
                  "layers it cannot serve are refused first (`privatemodel layers` lists them)")
    sub.add_argument("--model", required=True, help="Keras .h5: full model, or weights only with --architecture")
    sub.add_argument("--architecture", help="Keras architecture JSON, for a weights-only .h5")
    config_option(sub)
    sub.add_argument("--input-shape", type=_shape, help="expected input shape with batch, e.g. 1,28,28,1")
    sub.add_argument("--output-shape", type=_shape, help="expected output shape with batch, e.g. 1,10")
    sub.add_argument("--error-file", help="also write a failure's one-line reason here (e.g. /dev/termination-log)")

    command("layers", _layers, "the Keras layers private serving computes, drops, folds, leaves to the client or refuses")

    sub = command("serve", _serve, "serve private predictions from the shares on the players")
    config_option(sub)
    sub.add_argument("--port", type=int, default=8080)
    sub.add_argument("--host", default="0.0.0.0", help="address the endpoint binds")
    sub.add_argument("--num-requests", type=_positive, help="answer this many requests, then exit 0")
    sub.add_argument("--wait-after-complete", action="store_true", help="after N requests refuse more but keep running until SIGTERM")
    sub.add_argument("--max-batch", type=_positive, default=64, help="largest batch one request may carry")
    sub.add_argument("--warm-up", type=_sizes, default=[1], metavar="SIZES", help="batch sizes to compile before ready (default 1)")
    sub.add_argument("--error-file", help="also write a failure's one-line reason here")

    sub = command("predict", _predict, "a private prediction: share the query, reconstruct the answer, here only")
    config_option(sub)
    sub.add_argument("--server", default="http://127.0.0.1:8080", help="serving endpoint URL")
    sub.add_argument("--input", required=True, nargs="+", help=".npy array or .png image (one example or a batch)")
    sub.add_argument("--json", action="store_true", help="print JSON for scripts")
    sub.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the answer")

    sub = command("local", _local, "players as processes on this machine")
    sub.add_argument("action", choices=["up", "down", "status"])
    sub.add_argument("--dir", help="where the hostmap, PIDs and logs go (default ~/.cache/privatemodel/local)")
    sub.add_argument("--manual", metavar="HOST0,HOST1,HOST2", type=lambda s: s.split(","), help="print the commands to run a player on each of these hosts instead")

    sub = command("demo", _demo, "the whole story on this machine: train, share, serve 3 private predictions")
    sub.add_argument("--dir", help="working directory for players and logs (default: a fresh temporary one)")

    sub = command("bench", _bench, "latency and throughput: plaintext Keras, privatemodel, tf-encrypted's QueueServer")
    sub.add_argument("--output", default="build/bench.json")
    sub.add_argument("--requests", type=_positive, default=50, help="timed requests per configuration")
    return parser


def _player(args):
    from privatemodel.runtime.mpc import hostmap
    from privatemodel.runtime.player.run import run_player

    run_player(args.name, hostmap.load(args.config), args.state_dir, threads=args.threads)


def _share(args):
    from privatemodel.runtime.mpc import hostmap
    from privatemodel.runtime.owner.share import share_model

    manifest = share_model(args.model, hostmap.load(args.config), args.architecture, args.input_shape, args.output_shape)
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

    server = PrivateModelServer(hostmap.load(args.config), max_batch=args.max_batch)
    endpoint = ServingEndpoint(server, args.port, args.host, args.num_requests, args.wait_after_complete)
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

    from privatemodel.runtime.mpc import hostmap
    from privatemodel.runtime.client.client import PrivateClient
    from privatemodel.runtime.client.inputs import load_query

    client = PrivateClient(hostmap.load(args.config), args.server, timeout=args.timeout)
    batch = np.concatenate([load_query(path, client.input_shape) for path in args.input])
    outputs = client.predict(batch)
    classes = outputs.reshape(len(outputs), -1).argmax(axis=1)
    kind = "probabilities" if client.output_activation else "logits"
    if args.json:
        print(json.dumps({kind: outputs.tolist(), "classes": classes.tolist(), "output_activation": client.output_activation}))
        return
    if client.output_activation:
        print(f"probabilities ({client.output_activation} applied in the client to the reconstructed logits)")
    for index, (row, label) in enumerate(zip(outputs, classes)):
        values = " ".join(f"{v:+.3f}" for v in row.ravel())
        print(f"example {index}: class {label}  {kind} [{values}]")


def _local(args):
    from privatemodel.runtime.local.cluster import LocalCluster

    cluster = LocalCluster(args.dir)
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


def _demo(args):
    from privatemodel.runtime.demo import run_demo

    return run_demo(args.dir)


def _bench(args):
    from privatemodel.bench import run_bench

    run_bench(Path(args.output), args.requests)


def _report(error, error_file):
    from privatemodel.runtime.client.client import QueryError, ServingError
    from privatemodel.runtime.mpc.hostmap import HostmapError, PlayerUnreachable
    from privatemodel.runtime.client.inputs import InputFileError
    from privatemodel.runtime.owner.model import ModelError
    from privatemodel.runtime.serving.server import RequestError
    from privatemodel.runtime.player.storage import NoSharesError, StateDirInUse

    if isinstance(error, (ModelError, HostmapError, QueryError, InputFileError, RequestError, NoSharesError, StateDirInUse)):
        code = EXIT_BAD_INPUT
    elif isinstance(error, (PlayerUnreachable, ServingError, TimeoutError)):
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


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
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
