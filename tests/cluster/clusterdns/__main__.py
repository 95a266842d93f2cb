import argparse
import logging

from .records import Records
from .server import serve, start_watchers


def main(argv=None):
    parser = argparse.ArgumentParser(prog="clusterdns", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--listen", required=True, help="address to serve on (the node IP)")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--zone", default="cluster.local")
    parser.add_argument("--quiet", action="store_true", help="do not log every query")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(threadName)s %(message)s")

    from kubernetes import client, config

    config.load_kube_config(config_file=args.kubeconfig)
    records = Records(args.zone)
    synced = start_watchers(records, client.CoreV1Api())
    serve(records, args.listen, args.port, synced)


if __name__ == "__main__":
    main()
