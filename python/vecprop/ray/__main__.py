"""``python -m vecprop.ray infer``: the file job of :func:`vecprop.ray.infer` from a shell."""

import argparse
import sys

from ._infer import NUMPY, PARQUET, infer


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m vecprop.ray", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    job = commands.add_parser("infer", help="predict every row of .npy or Parquet files on Ray Data")
    job.add_argument("--model", help="model file (default: the built-in 784-512-256-10 network)")
    job.add_argument("--input", required=True, help="glob of .npy or .parquet files (quote it)")
    job.add_argument("--output", required=True, help="directory to create with the predictions")
    job.add_argument("--address", help='Ray cluster to join ("auto": this node\'s); default: a local Ray')
    job.add_argument("--device", default="auto", help="auto (the GPU Ray assigns, else cpu), cpu, cuda:N")
    job.add_argument("--column", help="input column of Parquet files (default: the only tensor column)")
    job.add_argument("--concurrency", type=int, help="actors (default: 1 up to the cluster's CPUs)")
    job.add_argument("--num-gpus", type=float, default=0, help="GPUs per actor")
    job.add_argument("--batch-size", type=int, default=4096, help="rows per batch")
    job.add_argument("--output-format", choices=[NUMPY, PARQUET], help="default: the input's")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    try:
        result = infer(
            args.model,
            args.input,
            args.output,
            address=args.address,
            device=args.device,
            column=args.column,
            concurrency=args.concurrency,
            num_gpus=args.num_gpus,
            batch_size=args.batch_size,
            output_format=args.output_format,
        )
    except Exception as error:  # one line on stderr, non-zero exit: the CLI's rule
        message = str(error).strip().splitlines()
        print(f"error: {type(error).__name__}: {message[-1] if message else ''}", file=sys.stderr)
        return 1
    print(f"wrote {result.rows} rows in {len(result.files)} files to {result.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
