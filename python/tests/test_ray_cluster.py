"""vecprop.ray on a two-node Ray cluster on this machine (ray.cluster_utils.Cluster)."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from ray_helpers import deadline, import_ray, random_rows, save_model  # noqa: F401

ray = import_ray()

from ray.cluster_utils import Cluster  # noqa: E402

import vecprop  # noqa: E402
import vecprop.ray  # noqa: E402

WIDTH = 64
NODE = {"num_cpus": 2, "object_store_memory": 256 << 20, "include_dashboard": False}


@pytest.fixture
def cluster():
    """A head and one worker node, 2 logical CPUs each, all on 127.0.0.1."""
    cluster = Cluster(initialize_head=True, head_node_args=NODE)
    worker = cluster.add_node(**{k: v for k, v in NODE.items() if k != "include_dashboard"})
    cluster.wait_for_nodes(timeout=60)
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


class NodeTaggingPredictor(vecprop.ray.Predictor):
    """Predictor that also says which node computed each row."""

    def __call__(self, batch):
        out = super().__call__(batch)
        out["node"] = np.full(len(out["output"]), ray.get_runtime_context().get_node_id())
        return out


def test_actors_on_both_nodes_give_exact_rows(cluster, tmp_path):
    ray.init(address=cluster[0].address)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    path = save_model(tmp_path / "m.safetensors", [WIDTH, 32, 4], ["sigmoid", "linear"])
    x = random_rows(100_000, WIDTH)
    predicted = ray.data.from_numpy(np.array_split(x, 16)).map_batches(
        NodeTaggingPredictor,
        fn_constructor_kwargs={"model": path, "device": "cpu"},
        batch_format="numpy",
        batch_size=4096,
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1.5,  # two such actors cannot share a 2-CPU node
    )
    batches = list(predicted.iter_batches(batch_format="numpy", batch_size=None))
    out = np.concatenate([b["output"] for b in batches])
    nodes = set(np.concatenate([b["node"] for b in batches]).tolist())
    assert np.array_equal(out, vecprop.load(path).predict(x))
    assert nodes == {node["NodeID"] for node in ray.nodes() if node["Alive"]}, nodes


def test_losing_a_node_mid_job_finishes_exactly_or_fails_cleanly(cluster, tmp_path):
    head, worker = cluster
    # A third node (1 CPU): with the worker gone, its actor can restart on the head and leave
    # a CPU for the reads. (A pool that no longer fits the cluster waits; see the README.)
    head.add_node(num_cpus=1)
    head.wait_for_nodes(timeout=60)
    path = save_model(tmp_path / "m.safetensors", [WIDTH, 512, 512, 4], ["relu", "relu", "linear"])
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    parts = [random_rows(5_000, WIDTH, seed=i) for i in range(24)]
    for i, part in enumerate(parts):
        np.save(inputs / f"x{i:02}.npy", part)
    output = tmp_path / "predictions"
    job = subprocess.Popen(
        [sys.executable, "-m", "vecprop.ray", "infer", "--address", head.address, "--model", path,
         "--input", str(inputs / "x*.npy"), "--output", str(output), "--concurrency", "2",
         "--batch-size", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Mid-job: as soon as the first part is written, the worker node goes.
        written = wait_for_first_part(tmp_path, job, timeout_s=120)
        if written:
            head.remove_node(worker)
        stdout, stderr = job.communicate(timeout=180)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(timeout=30)
    assert [name for name in os.listdir(tmp_path) if ".partial-" in name] == []
    if job.returncode == 0:
        manifest = json.loads((output / "manifest.json").read_text())
        out = np.concatenate([np.load(output / entry["name"]) for entry in manifest["files"]])
        assert np.array_equal(out, vecprop.load(path).predict(np.concatenate(parts)))
    else:
        assert not output.exists(), "a failed job left an output directory"
        assert stderr.strip().splitlines()[-1].startswith("error: "), stderr
    assert written, f"the job ended before writing a part (rc {job.returncode}): {stderr[-2000:]}"


def wait_for_first_part(folder, job, timeout_s):
    """Whether a part file appeared in the job's staging directory before it ended."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and job.poll() is None:
        for name in os.listdir(folder):
            staging = folder / name
            if ".partial-" in name and any(p.startswith("part-") for p in os.listdir(staging)):
                return True
        time.sleep(0.05)
    return False
