"""The HTTP bodies of the Serve deployment: parse and check a request, encode a reply.

Two formats: JSON (``{"inputs": [[...], ...]}`` in, ``{"outputs": [[...], ...]}`` out) and a
raw ``.npy`` array (``application/x-npy`` both ways). Every problem with a request is a
:class:`BadRequest` that carries the HTTP status and a message saying what is wrong.
"""

import io
import json

import numpy as np

JSON = "application/json"
NPY = "application/x-npy"
#: Largest request body accepted unless the deployment is told otherwise (64 MiB).
DEFAULT_MAX_BODY_BYTES = 64 << 20


class BadRequest(Exception):
    """A request the deployment refuses, with its 4xx status."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def body_format(content_type):
    """JSON or NPY for a Content-Type header (JSON when there is none)."""
    kind = (content_type or JSON).split(";")[0].strip().lower()
    if kind in (JSON, NPY):
        return kind
    raise BadRequest(415, f"unsupported Content-Type {kind!r}: send {JSON} or {NPY}")


def declared_length(headers, limit):
    """Checks the Content-Length header, if any, against ``limit``."""
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BadRequest(413, f"body of {int(length)} bytes is over the limit of {limit} bytes")


def append_chunk(body, chunk, limit):
    """Appends one received chunk, refusing a body that grows past ``limit``."""
    body += chunk
    if len(body) > limit:
        raise BadRequest(413, f"body is over the limit of {limit} bytes")
    return body


def parse_inputs(body, kind, width):
    """The request's rows as a C-contiguous (rows, width) float32 array."""
    if not body:
        raise BadRequest(400, f"empty body: send {{\"inputs\": [[...], ...]}} as {JSON} or an array as {NPY}")
    x = _parse_json(body) if kind == JSON else _parse_npy(body)
    if x.ndim != 2:
        raise BadRequest(422, f"inputs must be 2-D (rows, {width}), got shape {x.shape}")
    if x.shape[0] == 0:
        raise BadRequest(422, "inputs has no rows")
    if x.shape[1] != width:
        raise BadRequest(422, f"each row must have {width} values, got {x.shape[1]}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _parse_json(body):
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(400, f"malformed JSON: {error}") from None
    if not isinstance(document, dict) or "inputs" not in document:
        raise BadRequest(422, 'JSON body must be an object with "inputs": [[...], ...]')
    rows = document["inputs"]
    if not isinstance(rows, list) or not all(
        isinstance(row, list) and all(_is_number(v) for v in row) for row in rows
    ):
        raise BadRequest(422, '"inputs" must be a list of rows, each a list of numbers')
    try:
        return np.array(rows, dtype=np.float32)
    except ValueError:
        raise BadRequest(422, '"inputs" rows must all have the same length') from None


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_npy(body):
    try:
        x = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise BadRequest(400, f"malformed .npy body: {error}") from None
    if not isinstance(x, np.ndarray):
        raise BadRequest(400, "the .npy body must hold one array, not an archive")
    if x.dtype not in (np.float32, np.float64):
        raise BadRequest(422, f"dtype {x.dtype} is not supported: send float32 or float64")
    return x


def encode_outputs(y, kind):
    """The reply body for outputs ``y`` in the request's format."""
    if kind == JSON:
        return json.dumps({"outputs": y.tolist()}).encode()
    buffer = io.BytesIO()
    np.save(buffer, y, allow_pickle=False)
    return buffer.getvalue()


def encode_error(status, message):
    """A JSON error body: ``{"error": message, "status": status}``."""
    return json.dumps({"error": message, "status": status}).encode()
