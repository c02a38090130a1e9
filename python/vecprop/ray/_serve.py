"""Online serving on Ray Serve, with concurrent requests merged into one forward pass."""

import asyncio
import collections
import json

import numpy as np
from ray import serve
from starlette.responses import Response

from . import _http
from ._default_model import callers_path, load_model
from ._device import AUTO, assigned_device

#: Requests one forward pass merges, at most, unless told otherwise.
DEFAULT_MAX_BATCH_SIZE = 64
#: How long the first request of a batch waits for others, unless told otherwise.
DEFAULT_BATCH_WAIT_TIMEOUT_S = 0.002
#: Requests a replica holds at once: enough for full batches while the previous one runs.
DEFAULT_MAX_ONGOING_REQUESTS = 256
#: Merged batches of at most this many rows run on the event loop itself: the default
#: network takes <= 150 us for 64 rows on the CPU, less than handing the pass to a thread
#: and back costs on a busy 2-core machine.
INLINE_ROWS = 256
#: How many recent batch sizes a replica remembers (see ``VecpropServer.batch_sizes``).
_BATCH_HISTORY = 10_000
HEALTH_PATH = "/healthz"


@serve.deployment(max_ongoing_requests=DEFAULT_MAX_ONGOING_REQUESTS)
class VecpropServer:
    """One replica: a model, and an HTTP handler for prediction and health.

    ``POST`` (any path but the health route) with a JSON or ``application/x-npy`` body
    predicts its rows; ``GET /healthz`` answers ``{"status": "ok", "replica": id, ...}``. With ``batching``
    (the default), concurrent requests are merged by ``@serve.batch`` into one forward pass
    of up to ``max_batch_size`` requests, the first waiting at most ``batch_wait_timeout_s``
    for the others; the reply's ``X-Vecprop-Batch-Requests`` header says how many requests
    that pass served. A bad request gets a 4xx with ``{"error": ...}`` and the replica
    goes on. ``loader(model, device)`` replaces ``vecprop.load`` (see ``Predictor``).
    """

    def __init__(
        self,
        model=None,
        device=AUTO,
        batching=True,
        max_batch_size=DEFAULT_MAX_BATCH_SIZE,
        batch_wait_timeout_s=DEFAULT_BATCH_WAIT_TIMEOUT_S,
        max_body_bytes=_http.DEFAULT_MAX_BODY_BYTES,
        loader=None,
        **load_options,
    ):
        self.device = assigned_device(device)
        if loader is None:
            self.model = load_model(model, self.device, **load_options)
        else:
            self.model = loader(model, self.device)
        self.input_width = self.model.input_width
        self.batching = batching
        self.max_body_bytes = max_body_bytes
        self.recent_batch_sizes = collections.deque(maxlen=_BATCH_HISTORY)
        self.predict_merged.set_max_batch_size(max_batch_size)
        self.batch_wait_timeout_s = batch_wait_timeout_s
        self.predicting = 0  # requests between parsing and their reply

    async def __call__(self, request):
        try:
            if request.url.path.rstrip("/").endswith(HEALTH_PATH):
                return self.health_response(request)
            if request.method != "POST":
                raise _http.BadRequest(405, f"{request.method} is not allowed: POST the inputs")
            kind = _http.body_format(request.headers.get("content-type"))
            x = _http.parse_inputs(await self.read_body(request), kind, self.input_width)
            y, merged = await self.predict(x)
            return Response(
                _http.encode_outputs(y, kind),
                media_type=kind,
                headers={"X-Vecprop-Batch-Requests": str(merged)},
            )
        except _http.BadRequest as error:
            return _error_response(error.status, error.message)
        except ValueError as error:  # vecprop.VecpropError is a ValueError
            return _error_response(422, str(error))

    def health_response(self, request):
        if request.method not in ("GET", "HEAD"):
            raise _http.BadRequest(405, f"{request.method} is not allowed on {HEALTH_PATH}: GET it")
        body = {
            "status": "ok",
            "replica": serve.get_replica_context().replica_id.unique_id,
            "device": self.device,
            "input_width": self.input_width,
            "output_width": self.model.output_width,
        }
        return Response(json.dumps(body).encode(), media_type=_http.JSON)

    async def read_body(self, request):
        _http.declared_length(request.headers, self.max_body_bytes)
        body = b""
        async for chunk in request.stream():
            body = _http.append_chunk(body, chunk, self.max_body_bytes)
        return body

    async def predict(self, x):
        """The outputs for ``x`` and how many requests their forward pass served."""
        if not self.batching:
            self.recent_batch_sizes.append(1)
            return self.model(x), 1
        # A batch's first request waits for others only when others are on their way:
        # alone, it would wait batch_wait_timeout_s for nobody (one closed-loop client went
        # from 74 to about 140 req/s, 2026-12-08).
        self.predicting += 1
        try:
            alone = self.predicting == 1
            self.predict_merged.set_batch_wait_timeout_s(0.0 if alone else self.batch_wait_timeout_s)
            return await self.predict_merged(x)
        finally:
            self.predicting -= 1

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_TIMEOUT_S)
    async def predict_merged(self, inputs):
        """One forward pass over the rows of every request in ``inputs``."""
        merged = len(inputs)
        self.recent_batch_sizes.append(merged)
        x = inputs[0] if merged == 1 else np.concatenate(inputs)
        if len(x) <= INLINE_ROWS:
            y = self.model(x)
        else:
            # A long pass runs off the event loop (vecprop releases the GIL), which
            # meanwhile gathers the next batch.
            y = await asyncio.get_running_loop().run_in_executor(None, self.model, x)
        ends = np.cumsum([len(part) for part in inputs])[:-1]
        return [(part, merged) for part in np.split(y, ends)]

    def batch_sizes(self):
        """How many requests each recent forward pass served, oldest first."""
        return list(self.recent_batch_sizes)

    def check_health(self):
        """Serve's health check: the model still answers one row."""
        self.model(np.zeros((1, self.input_width), np.float32))


def _error_response(status, message):
    return Response(_http.encode_error(status, message), status_code=status, media_type=_http.JSON)


def deployment(
    model=None,
    *,
    name="vecprop",
    num_replicas=1,
    autoscaling_config=None,
    ray_actor_options=None,
    max_ongoing_requests=DEFAULT_MAX_ONGOING_REQUESTS,
    **server_options,
):
    """A Serve application of :class:`VecpropServer` for ``model`` (a file, a relative path
    meaning the caller's directory, or None for the default model), ready for ``serve.run``.

    ``num_replicas`` or ``autoscaling_config`` scale it; ``ray_actor_options={"num_gpus": 1}``
    gives each replica one GPU (and ``device="auto"`` uses it). ``server_options`` are
    :class:`VecpropServer`'s: device, batching, max_batch_size, batch_wait_timeout_s,
    max_body_bytes, loader, activations, batch_size, dtype.
    """
    scaling = {"autoscaling_config": autoscaling_config} if autoscaling_config else {"num_replicas": num_replicas}
    options = VecpropServer.options(
        name=name,
        max_ongoing_requests=max_ongoing_requests,
        ray_actor_options=ray_actor_options or {},
        **scaling,
    )
    return options.bind(callers_path(model), **server_options)


#: How each ``serve run vecprop.ray:app key=value`` argument is read from its text.
_APP_ARGUMENTS = {
    "model": str,
    "device": str,
    "name": str,
    "num_replicas": int,
    "num_gpus": float,
    "batching": lambda text: text.strip().lower() in ("1", "true", "yes", "on"),
    "max_batch_size": int,
    "batch_wait_timeout_s": float,
    "max_body_bytes": int,
    "max_ongoing_requests": int,
    "activations": str,
    "batch_size": int,
    "dtype": str,
}


def app(args):
    """The application builder for ``serve run vecprop.ray:app model=m.safetensors ...``.

    Arguments (all optional): model, device, name, num_replicas, num_gpus (per replica),
    batching, max_batch_size, batch_wait_timeout_s, max_body_bytes, max_ongoing_requests,
    activations, batch_size, dtype.
    """
    unknown = set(args) - set(_APP_ARGUMENTS)
    if unknown:
        raise ValueError(
            f"unknown argument(s) {', '.join(sorted(unknown))}; known: {', '.join(_APP_ARGUMENTS)}"
        )
    options = {key: _APP_ARGUMENTS[key](value) if isinstance(value, str) else value for key, value in args.items()}
    num_gpus = options.pop("num_gpus", 0)
    if num_gpus:
        options["ray_actor_options"] = {"num_gpus": num_gpus}
    return deployment(options.pop("model", None), **options)
