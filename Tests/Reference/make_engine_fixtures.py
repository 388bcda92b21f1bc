"""Writes Tests/SharedTests/Fixtures/engine_w1.safetensors: PyTorch's loss, gradient and
Hessian-vector product of W1 on a batch of 2 images 32x32, at formula parameters.

Run from the repository root (PyTorch from PyPI, only needed to regenerate):
    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch safetensors numpy
    /tmp/ref/bin/python Tests/Reference/make_engine_fixtures.py
"""
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from w1 import UNetW1, formula_direction, formula_parameters, w1_loss  # noqa: E402

torch.manual_seed(20261127)
model = UNetW1()
params = formula_parameters(model)
direction = formula_direction(model)
names = [n for n, _ in model.named_parameters()]

images = torch.randn(2, 1, 32, 32)
masks = torch.zeros(2, 1, 32, 32)
masks[0, 0, 8:20, 6:22] = 1          # a rectangle
yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
masks[1, 0] = (((yy - 17) ** 2 + (xx - 13) ** 2) < 60).float()   # a disc
images = images + 1.5 * masks        # the structure is brighter than its surroundings

theta = {n: params[n].clone().requires_grad_(True) for n in names}
logits = torch.func.functional_call(model, theta, (images,))
loss = w1_loss(logits, masks)
grads = torch.autograd.grad(loss, [theta[n] for n in names], create_graph=True)
dot = sum((g * direction[n]).sum() for g, n in zip(grads, names))
hvp = torch.autograd.grad(dot, [theta[n] for n in names])

tensors = {"images": images, "masks": masks, "loss": loss.detach().reshape(1)}
for n, g, h in zip(names, grads, hvp):
    tensors["grad." + n] = g.detach().contiguous()
    tensors["hvp." + n] = h.detach().contiguous()
out = os.path.join(os.path.dirname(__file__), "..", "SharedTests", "Fixtures", "engine_w1.safetensors")
save_file(tensors, out, metadata={"generator": "Tests/Reference/make_engine_fixtures.py",
                                  "torch": torch.__version__})
print("loss", loss.item(), "wrote", os.path.normpath(out))
