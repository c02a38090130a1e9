"""``python -m vecprop.ray infer``: the file job of :func:`vecprop.ray.infer` from a shell."""

import argparse
import os
import re
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
    job.add_argument("--cpus-per-actor", type=float, default=1, help="CPUs each actor reserves")
    job.add_argument("--num-gpus", type=float, default=0, help="GPUs per actor")
    job.add_argument("--batch-size", type=int, default=4096, help="rows per batch")
    job.add_argument("--output-format", choices=[NUMPY, PARQUET], help="default: the input's")
    job.add_argument("--verbose", action="store_true", help="keep Ray's own log lines and progress")
    return parser.parse_args(argv)



#: A traceback's closing line, "package.Type: message", for an error that is not Ray's own.
_USER_ERROR_LINE = re.compile(r"^(?!ray\.)([\w.]*(?:Error|Exception)): (.+)$", re.MULTILINE)


def describe(error):
    """One line for an error: what went wrong in the actor, not the layers Ray wraps it in.

    Ray carries an actor's exception back as text in its own error's traceback, so the
    first user error line there (e.g. "vecprop.VecpropError: input has 35 columns ...") is
    the answer; without one, the error's own first line.
    """
    found = _USER_ERROR_LINE.search(str(error)) if type(error).__module__.startswith("ray") else None
    if found:
        return f"{found.group(1).rsplit('.', 1)[-1]}: {found.group(2).strip()}"
    lines = str(error).strip().splitlines() or [""]
    return f"{type(error).__name__}: {lines[0]}"


def main(argv=None):
    args = parse_arguments(argv)
    if not args.verbose:  # before ray is imported: the C++ side's log level
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
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
            cpus_per_actor=args.cpus_per_actor,
            batch_size=args.batch_size,
            output_format=args.output_format,
            quiet=not args.verbose,
        )
    except Exception as error:  # one line on stderr, non-zero exit: the CLI's rule
        print(f"error: {describe(error)}", file=sys.stderr)
        return 1
    print(f"wrote {result.rows} rows in {len(result.files)} files to {result.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
