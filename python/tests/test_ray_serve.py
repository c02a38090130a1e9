"""vecprop.ray on Ray Serve: a real local Ray and Serve on 127.0.0.1, real HTTP."""

import http.client
import io
import json
import threading
import time

import numpy as np
import pytest

from ray_helpers import LOOPBACK, deadline, free_port, import_ray, random_rows, save_model  # noqa: F401

ray = import_ray()

from ray import serve  # noqa: E402

import vecprop  # noqa: E402
import vecprop.ray  # noqa: E402

WIDTH, MAX_BODY = 24, 1 << 20
CLIENTS = 96  # in flight at once, more than one batch's worth


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(port, model path): one batched vecprop deployment at / on 127.0.0.1."""
    path = save_model(tmp_path_factory.mktemp("model") / "m.safetensors", [WIDTH, 40, 5], ["relu", "softmax"])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": LOOPBACK, "port": port})
    application = vecprop.ray.deployment(
        path, device="cpu", max_batch_size=32, batch_wait_timeout_s=0.05, max_body_bytes=MAX_BODY
    )
    serve.run(application, name="vecprop", route_prefix="/")
    yield port, path
    serve.shutdown()
    ray.shutdown()


def post(port, body, content_type, timeout=60):
    """(status, headers, body) of one POST to /."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request("POST", "/", body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def get(port, path, timeout=30):
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def npy(x):
    buffer = io.BytesIO()
    np.save(buffer, x)
    return buffer.getvalue()


def predict_json(port, x):
    status, headers, body = post(port, json.dumps({"inputs": x.tolist()}), "application/json")
    assert status == 200, body
    return np.array(json.loads(body)["outputs"], np.float32), headers


def test_concurrent_clients_get_their_own_rows_and_requests_are_merged(server):
    port, path = server
    model = vecprop.load(path)
    requests = [random_rows(1 + i % 3, WIDTH, seed=100 + i) for i in range(CLIENTS)]
    results, errors = [None] * CLIENTS, []
    start = threading.Barrier(CLIENTS)

    def client(i):
        try:
            start.wait(timeout=30)
            if i % 2:
                status, headers, body = post(port, npy(requests[i]), "application/x-npy")
                assert status == 200, body
                results[i] = (np.load(io.BytesIO(body)), headers)
            else:
                results[i] = predict_json(port, requests[i])
        except Exception as error:  # reported below, with the client's number
            errors.append((i, repr(error)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    merged = []
    for x, (y, headers) in zip(requests, results):
        # Bit for bit what Model.predict gives these rows alone (JSON carries float32 exactly).
        assert np.array_equal(y, model.predict(x))
        merged.append(int(headers["x-vecprop-batch-requests"]))
    handle = serve.get_app_handle("vecprop")
    seen = handle.batch_sizes.remote().result(timeout_s=30)
    assert max(merged) > 1 and max(seen) > 1, f"no request was merged: batch sizes {seen}"
    assert max(seen) <= 32
    assert sum(seen) >= CLIENTS


def test_health_route(server):
    port, _ = server
    status, body = get(port, "/healthz")
    assert status == 200
    health = json.loads(body)
    assert health["status"] == "ok" and health["input_width"] == WIDTH and health["output_width"] == 5


BAD_REQUESTS = [
    ("wrong width", json.dumps({"inputs": [[0.5] * (WIDTH - 1)]}), "application/json", 422, f"must have {WIDTH} values"),
    ("wrong width, npy", "npy:width", "application/x-npy", 422, f"must have {WIDTH} values"),
    ("wrong dtype, npy", "npy:int64", "application/x-npy", 422, "dtype int64 is not supported"),
    ("strings in JSON", json.dumps({"inputs": [["1"] * WIDTH]}), "application/json", 422, "list of numbers"),
    ("ragged rows", json.dumps({"inputs": [[1.0] * WIDTH, [1.0]]}), "application/json", 422, "same length"),
    ("no inputs key", json.dumps({"rows": []}), "application/json", 422, '"inputs"'),
    ("no rows", json.dumps({"inputs": []}), "application/json", 422, "2-D"),
    ("empty body", b"", "application/json", 400, "empty body"),
    ("empty body, npy", b"", "application/x-npy", 400, "empty body"),
    ("malformed JSON", b'{"inputs": [[1, 2', "application/json", 400, "malformed JSON"),
    ("malformed npy", b"\x93NUMPY garbage", "application/x-npy", 400, "malformed .npy"),
    ("oversized body", "oversized", "application/json", 413, "over the limit"),
    ("unknown content type", b"1,2,3", "text/csv", 415, "unsupported Content-Type"),
]


def bad_body(body):
    if body == "npy:width":
        return npy(np.zeros((2, WIDTH + 1), np.float32))
    if body == "npy:int64":
        return npy(np.zeros((2, WIDTH), np.int64))
    if body == "oversized":
        return b" " * (MAX_BODY + 1)
    return body


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_bad_input_gets_4xx_and_the_replica_goes_on(server, case):
    port, path = server
    _, body, content_type, status, message = case
    replica = json.loads(get(port, "/healthz")[1])["replica"]
    got, _, reply = post(port, bad_body(body), content_type)
    assert got == status, reply
    error = json.loads(reply)
    assert error["status"] == status and message in error["error"], error
    x = random_rows(2, WIDTH, seed=7)
    y, _ = predict_json(port, x)
    assert np.array_equal(y, vecprop.load(path).predict(x))
    assert json.loads(get(port, "/healthz")[1])["replica"] == replica, "the replica was replaced"


def test_nan_rows_are_predicted(server):
    port, path = server
    x = random_rows(3, WIDTH, seed=8)
    x[1, 4] = np.nan
    body = json.dumps({"inputs": x.tolist()})  # Python's JSON writes NaN as the token NaN
    status, _, reply = post(port, body, "application/json")
    assert status == 200, reply
    y = np.array(json.loads(reply)["outputs"], np.float32)
    expected = vecprop.load(path).predict(x)
    assert np.isnan(y[1]).all() and np.array_equal(y, expected, equal_nan=True)


def test_app_builder_reads_serve_run_arguments(server, tmp_path):
    port, path = server
    application = vecprop.ray.app({"model": path, "device": "cpu", "batching": "false", "name": "plain"})
    serve.run(application, name="plain", route_prefix="/plain")
    deadline_s = time.monotonic() + 60
    while get(port, "/plain/healthz")[0] != 200:
        assert time.monotonic() < deadline_s, "the unbatched app never answered its health route"
        time.sleep(0.5)
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    x = random_rows(4, WIDTH, seed=9)
    connection.request("POST", "/plain", body=npy(x), headers={"Content-Type": "application/x-npy"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("X-Vecprop-Batch-Requests") == "1"
    assert np.array_equal(np.load(io.BytesIO(response.read())), vecprop.load(path).predict(x))
    serve.delete("plain")
    with pytest.raises(ValueError, match="unknown argument"):
        vecprop.ray.app({"modle": path})
