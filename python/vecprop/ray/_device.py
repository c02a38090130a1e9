"""Which device an actor or replica runs on: the GPU Ray assigned to it, or the CPU."""

import os

#: The device value meaning "the GPU Ray gave this actor, else the CPU".
AUTO = "auto"


def device_for(requested, gpu_ids, environ):
    """The vecprop device string for ``requested`` ("auto", "cpu", "cuda", "cuda:N") in a
    worker that Ray gave the GPUs ``gpu_ids`` (``ray.get_gpu_ids()``).

    Ray normally sets CUDA_VISIBLE_DEVICES to the assigned GPUs, so the first one is
    "cuda:<its position in that list>", i.e. "cuda:0"; with
    RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES set every GPU stays visible and the id Ray
    reports is the device's own index. An explicit "cpu" or "cuda:N" is kept as given.
    """
    if requested not in (AUTO, "cuda"):
        return requested
    if not gpu_ids:
        if requested == "cuda":
            raise ValueError('device "cuda" was asked for, but Ray assigned this worker no GPU (set num_gpus)')
        return "cpu"
    first = str(gpu_ids[0])
    if environ.get("RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"):
        return f"cuda:{first}"
    visible = [v.strip() for v in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return f"cuda:{visible.index(first)}" if first in visible else f"cuda:{first}"


def assigned_device(requested=AUTO):
    """:func:`device_for` in the calling Ray worker (use it inside an actor or replica)."""
    if requested not in (AUTO, "cuda"):
        return requested
    import ray

    return device_for(requested, ray.get_gpu_ids(), os.environ)
