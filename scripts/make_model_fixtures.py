#!/usr/bin/env python3
"""Writes the model fixtures that tests/all/models.rs checks vecprop against: PyTorch models as
people have them (nested modules, bias-free Linear, BatchNorm1d), saved with safetensors and
exported to ONNX with both exporters, with PyTorch's outputs on tests/fixtures/torch_input.npy.

  models_nested.safetensors       Sequential(Sequential(Linear, Sigmoid), Sequential(Sequential(
                                  Linear(bias=False), ReLU), Linear), Tanh, Identity x 7, Linear):
                                  tensors 0.0.*, 1.0.0.weight, 1.1.*, 10.* (10 sorts after 1)
  models_bn.safetensors           BatchNorm1d, Linear, BatchNorm1d, ReLU, Linear(bias=False),
                                  BatchNorm1d, Sigmoid, Linear (BatchNorm before and after)
  models_bn_eps.safetensors       the same with eps=1e-3 and metadata batchnorm_eps=0.001
  models_bn_after_relu.safetensors Linear, ReLU, BatchNorm1d, Dropout, Linear, Tanh, Linear: the
                                  gap at 1 puts the BatchNorm after the ReLU, so it folds forward
  models_onnx_legacy.onnx         an MLP with BatchNorm after a Linear and after a ReLU,
                                  Dropout, Flatten, a bias-free Linear and Softmax (TorchScript exporter)
  models_onnx_dynamo.onnx         the same, dynamo exporter
  models_onnx_external.onnx(.data) the legacy export with every initializer in an external file
  models_act_legacy.onnx          GELU, LeakyReLU(0.2), SiLU, GELU(tanh) (opset 17: decomposed)
  models_act_dynamo.onnx          the same, dynamo exporter
  models_logsoftmax.onnx          an MLP ending in LogSoftmax (unsupported: the error names it)
  models_residual.onnx            a skip connection (unsupported: the error names the Add)
  models_conv_legacy.onnx         Unflatten, Conv1d, Flatten, Linear (unsupported: the error lists
                                  Conv and the Reshape to rank 3 that its shape arithmetic computes)
  models_checkpoint.pt            torch.save(model): a zip holding data.pkl
  models_legacy.pt                torch.save(model, _use_new_zipfile_serialization=False): a pickle
  models_<name>_output.npy        PyTorch's float32 outputs (ONNX Runtime's agree to 1e-5; checked here)

Run from the repository root with torch 2.6.0, onnx 1.17.0, onnxruntime 1.20.1 and
onnxscript 0.2.2 installed (see scripts/requirements-models.txt):
    python3 scripts/make_model_fixtures.py
"""

import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors.torch import save_file
from torch import nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures")


def path(name):
    return os.path.join(OUT, name)


def train(model, steps=40):
    """A few Adam steps on a random task in train mode, so weights and running statistics
    are not the initialisation's."""
    x = torch.randn(256, 13) * 2.0 + 0.5
    y = torch.randn(256, model(x[:2]).shape[1])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimiser.step()
    model.eval()
    return model


def reference(model, x, name):
    with torch.no_grad():
        y = model(x).numpy().astype(np.float32)
    np.save(path(f"models_{name}_output.npy"), y)
    return y


def save_state(model, name, activations, extra=None):
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    metadata = {"activations": activations, **(extra or {})}
    save_file(state, path(f"models_{name}.safetensors"), metadata=metadata)


def export(model, x, file, dynamo):
    if dynamo:
        program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=({0: "rows"},))
        program.save(file)
    else:
        torch.onnx.export(model, (x,), file, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "rows"}, "y": {0: "rows"}}, dynamo=False)


def check_ort(file, x, y):
    session = ort.InferenceSession(file, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    err = np.max(np.abs(got - y) / np.maximum(np.abs(y), 1.0))
    assert err <= 1e-5, (file, err)
    print(f"{os.path.basename(file)}: ORT vs PyTorch max scaled error {err:.2e}")


def main():
    torch.manual_seed(20261123)
    x = torch.from_numpy(np.load(path("torch_input.npy"))).float()

    nested = nn.Sequential(
        nn.Sequential(nn.Linear(13, 24), nn.Sigmoid()),
        nn.Sequential(nn.Sequential(nn.Linear(24, 20, bias=False), nn.ReLU()), nn.Linear(20, 16)),
        nn.Tanh(),
        *[nn.Identity() for _ in range(7)],
        nn.Linear(16, 5),
    )
    train(nested)
    save_state(nested, "nested", "sigmoid,relu,tanh,linear")
    reference(nested, x, "nested")

    def bn_model(eps):
        return nn.Sequential(
            nn.BatchNorm1d(13, eps=eps), nn.Linear(13, 32), nn.BatchNorm1d(32, eps=eps), nn.ReLU(),
            nn.Linear(32, 16, bias=False), nn.BatchNorm1d(16, eps=eps), nn.Sigmoid(),
            nn.Linear(16, 5),
        )

    bn = train(bn_model(1e-5))
    save_state(bn, "bn", "relu,sigmoid,linear")
    reference(bn, x, "bn")
    bn_eps = train(bn_model(1e-3))
    save_state(bn_eps, "bn_eps", "relu,sigmoid,linear", {"batchnorm_eps": "0.001"})
    reference(bn_eps, x, "bn_eps")

    after = train(nn.Sequential(
        nn.Linear(13, 32), nn.ReLU(), nn.BatchNorm1d(32), nn.Dropout(0.1), nn.Linear(32, 16),
        nn.Tanh(), nn.Linear(16, 5),
    ))
    save_state(after, "bn_after_relu", "relu,tanh,linear")
    reference(after, x, "bn_after_relu")

    mlp = train(nn.Sequential(
        nn.Flatten(), nn.Linear(13, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(32, 24), nn.ReLU(), nn.BatchNorm1d(24), nn.Linear(24, 16, bias=False), nn.Tanh(),
        nn.Linear(16, 5), nn.Softmax(dim=-1),
    ))
    y = reference(mlp, x, "onnx_mlp")
    for kind in ["legacy", "dynamo"]:
        file = path(f"models_onnx_{kind}.onnx")
        export(mlp, x, file, kind == "dynamo")
        check_ort(file, x, y)
    external = path("models_onnx_external.onnx")
    model = onnx.load(path("models_onnx_legacy.onnx"))
    onnx.save_model(model, external, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="models_onnx_external.onnx.data", size_threshold=0)
    check_ort(external, x, y)

    act = train(nn.Sequential(
        nn.Linear(13, 16), nn.GELU(), nn.Linear(16, 16), nn.LeakyReLU(0.2), nn.Linear(16, 12),
        nn.SiLU(), nn.Linear(12, 8), nn.GELU(approximate="tanh"), nn.Linear(8, 5),
    ))
    y = reference(act, x, "act")
    for kind in ["legacy", "dynamo"]:
        file = path(f"models_act_{kind}.onnx")
        export(act, x, file, kind == "dynamo")
        check_ort(file, x, y)

    log = nn.Sequential(nn.Linear(13, 8), nn.ReLU(), nn.Linear(8, 5), nn.LogSoftmax(dim=-1)).eval()
    export(log, x, path("models_logsoftmax.onnx"), False)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(13, 13), nn.Linear(13, 5)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)) + x)

    export(Residual().eval(), x, path("models_residual.onnx"), False)

    conv = nn.Sequential(nn.Unflatten(1, (1, 13)), nn.Conv1d(1, 2, 3), nn.Flatten(),
                         nn.Linear(22, 5)).eval()
    export(conv, x, path("models_conv_legacy.onnx"), False)

    small = nn.Sequential(nn.Linear(13, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    torch.save(small, path("models_checkpoint.pt"))
    torch.save(small, path("models_legacy.pt"), _use_new_zipfile_serialization=False)

    for name in sorted(os.listdir(OUT)):
        if name.startswith("models_") and name.endswith(".onnx"):
            graph = onnx.load(path(name), load_external_data=False).graph
            print(name, [n.op_type for n in graph.node])


if __name__ == "__main__":
    main()
