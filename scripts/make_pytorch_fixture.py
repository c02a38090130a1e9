#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures that tests/all/pytorch.rs checks vecprop against.

A small torch.nn.Sequential MLP (Linear(13,32), Sigmoid, Linear(32,17), ReLU, Linear(17,5)),
trained a few steps from a fixed seed, saved with safetensors in float32 and in bfloat16,
with a float64 input batch of 37 rows and PyTorch's outputs:

  tests/fixtures/torch_mlp.safetensors        float32 parameters
  tests/fixtures/torch_mlp_bf16.safetensors   the same model after model.to(torch.bfloat16)
  tests/fixtures/torch_input.npy              float64, 37 x 13
  tests/fixtures/torch_output.npy             float32 model on float32(input), float32, 37 x 5
  tests/fixtures/torch_output_bf16.npy        bfloat16 parameters, computed in float32

Run from the repository root:  python3 scripts/make_pytorch_fixture.py
"""

import os

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
METADATA = {"activations": "sigmoid,relu,linear"}


def main() -> None:
    torch.manual_seed(20240611)
    model = torch.nn.Sequential(
        torch.nn.Linear(13, 32),
        torch.nn.Sigmoid(),
        torch.nn.Linear(32, 17),
        torch.nn.ReLU(),
        torch.nn.Linear(17, 5),
    )

    # A few steps of training on a random regression task, so the weights are not the
    # initialisation's.
    x_train = torch.randn(256, 13)
    y_train = torch.randn(256, 5)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(50):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x_train), y_train)
        loss.backward()
        optimiser.step()

    os.makedirs(OUT, exist_ok=True)
    x = torch.randn(37, 13, dtype=torch.float64) * 3.0
    np.save(os.path.join(OUT, "torch_input.npy"), x.numpy())

    model.eval()
    with torch.no_grad():
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, os.path.join(OUT, "torch_mlp.safetensors"), metadata=METADATA)
        y = model(x.float())
        np.save(os.path.join(OUT, "torch_output.npy"), y.numpy().astype(np.float32))

        model_bf16 = model.to(torch.bfloat16)
        state = {k: v.contiguous() for k, v in model_bf16.state_dict().items()}
        save_file(state, os.path.join(OUT, "torch_mlp_bf16.safetensors"), metadata=METADATA)
        # vecprop holds bf16 parameters exactly in f32 and computes in f32 on the CPU.
        y_bf16 = model_bf16.float()(x.float())
        np.save(os.path.join(OUT, "torch_output_bf16.npy"), y_bf16.numpy().astype(np.float32))
        native = model_bf16.to(torch.bfloat16)(x.to(torch.bfloat16)).float()
        print("f32 vs bf16-parameter output, max abs diff:", (y - y_bf16).abs().max().item())
        print("native bf16 forward vs f32 compute, max abs diff:", (native - y_bf16).abs().max().item())
        print("output range:", y.min().item(), y.max().item())


if __name__ == "__main__":
    main()
