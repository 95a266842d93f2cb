"""The baseline: tf-encrypted's own QueueServer / QueueClient serving the same model.

Run as two processes, like its users do: `python -m privatemodel.bench.baseline server|client ...`.
The client prints one JSON line of timings. Note the baseline reveals every answer to server0 and
server1 (tf-encrypted's default); it is here for speed comparison only. It runs tf-encrypted's own
protocol code: the project's fixes it needs to run at all stay (the secure random op, average
pooling); its speed-ups do not: the faster and permuted ReLU protocol (private_compare.py),
server0's cheaper masked products, convolutions without tf-encrypted's im2col, and seeds left
unordered in a tf.function.
"""
import argparse
import json
import sys
import time



def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--requests", type=int, required=True)
    args = parser.parse_args()

    from privatemodel.runtime.mpc import loopback

    loopback.ensure_preloaded(module="privatemodel.bench.baseline")
    import tensorflow as tf

    from privatemodel.runtime.mpc import hostmap
    from privatemodel.runtime.serving.server import _with_batch_size
    from privatemodel.runtime.mpc.session import connect_securenn
    from privatemodel.runtime.mpc.tfe import tfe
    from privatemodel.runtime.mpc import secure_random
    from privatemodel.runtime.mpc.tfe_fixes import ORIGINALS
    from tf_encrypted.protocol.pond import pond
    from tf_encrypted.protocol.securenn import securenn
    from tf_encrypted.tensor import native

    securenn._lsb_private = ORIGINALS[(securenn, "_lsb_private")]
    for product in ("_conv2d_masked_masked", "_matmul_masked_masked"):
        setattr(pond, product, ORIGINALS[(pond, product)])
    native.conv2d = ORIGINALS[(native, "conv2d")]
    secure_random.set_ordered_in_functions(secure_random.UNORDERED_OPS, True)
    connect_securenn(hostmap.load(args.config), "serve")
    keras_model = tf.keras.models.load_model(args.model, compile=False)
    input_shape = [args.batch] + list(keras_model.input_shape[1:])
    output_shape = [args.batch] + list(keras_model.output_shape[1:])

    if args.role == "server":
        model = tfe.keras.models.model_from_config(_with_batch_size(keras_model.get_config(), args.batch))
        model.set_weights(keras_model.get_weights())
        server = tfe.serving.QueueServer(input_shape=input_shape, output_shape=output_shape, computation_fn=model)
        print("ready", flush=True)
        server.run(num_steps=args.requests + 1)
        return

    from privatemodel.runtime.reference import load_digits

    x = load_digits()[2][: args.batch]
    client = tfe.serving.QueueClient(input_shape=input_shape, output_shape=output_shape)
    timings = []
    for _ in range(args.requests + 1):
        started = time.perf_counter()
        client.run(x)
        timings.append(time.perf_counter() - started)
    print(json.dumps({"first": timings[0], "latencies": timings[1:]}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
