"""Writes Tests/SharedTests/Fixtures/maml_w1.safetensors: PyTorch meta-gradients for W1 on
one 64x64 task (K = Q = 5, 5 inner steps), by plain autograd with create_graph=True, in float64:

  second.<param>            exact second order, one inner rate 0.01 (the W1 setting)
  first.<param>             first order (FOMAML), same setting
  lslr_msl.<param>          second order with learned per-tensor, per-step rates (LSLR) and
  lslr_msl.inner_lr.<param> the MAML++ multi-step loss at outer step 30 of 100 annealing steps
  lslr_msl_first.inner_lr.<param>  the rate gradients of the same objective, first order
  anil.<param>              ANIL (Raghu et al. 2020): the inner loop adapts only the head,
                            at rate ANIL_RATE; exact second order
  anil_first.<param>        the same, first order
  proto.<param>             Proto-MAML (Triantafillou et al. 2020): the support set's
                            nearest-class-mean head added to the head before the inner loop,
                            differentiated through the prototypes; second order, rate 0.01
  proto_first.<param>       the same, first order (the graph cut at each inner gradient, not
                            at the prototypes)
  proto_anil.<param>        the prototype head with ANIL's head-only inner loop; second order

Parameters and rates come from formulas (w1.py) that TestSupport reproduces bit for bit.

Why float64: W1 is piecewise smooth (ReLU, max-pooling), with ~10^6 kinks per batch. In
float64 its gradient is linear in a parameter perturbation up to ~1e-6 and then jumps by
percents as a kink is crossed. float32 rounding crosses such kinks, so two float32
implementations (or PyTorch float32 against its own float64) follow different inner-loop
trajectories and their 5-step meta-gradients differ by O(1); `--measure-float32` prints
PyTorch's own float32 error. Exactness of the algorithm is therefore checked in float64,
where MedMAML's Float64 learner (the same generic code as its Float32 one) must match.

Run from the repository root with PyTorch installed from PyPI (only needed to regenerate):
    /tmp/ref/bin/python Tests/Reference/make_maml_fixtures.py [--measure-float32]
"""
import math
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from w1 import UNetW1, formula_parameters, formula_uniform, w1_loss  # noqa: E402

STEPS, K, Q = 5, 5, 5
# He-uniform conv weights (bound sqrt(6 / fan_in)), MedMAML's default initialisation: behind
# GroupNorm the loss is invariant to a conv's weight scale, so its curvature goes as 1/|w|^2,
# and PyTorch's default bound 1/sqrt(fan_in) gives Hessian eigenvalues near -700 at which five
# inner steps of lr 0.01 amplify the backward sweep ~10^4-fold.
HE_GAIN = math.sqrt(6)


def msl_weights(steps, outer_step, anneal):
    """MAML++ (Antoniou et al. 2019) multi-step loss weights, from its reference code."""
    w = [1.0 / steps] * steps
    decay = 1.0 / steps / anneal
    minimum = 0.03 / steps
    for i in range(steps - 1):
        w[i] = max(w[i] - outer_step * decay, minimum)
    w[-1] = min(w[-1] + outer_step * (steps - 1) * decay, 1.0 - (steps - 1) * minimum)
    return w


def formula_rates(names):
    """Learned inner rates: 0.02 + 0.06 u per tensor and step (stream 2)."""
    return {n: (0.02 + 0.06 * formula_uniform("inner_lr." + n, STEPS, 2)).to(torch.float32) for n in names}


def objective(model, theta, rates, task, order, weights):
    """sum_j w_j L_q(theta_j) after STEPS inner SGD steps; first order cuts the graph at each g."""
    xs, ms, xq, mq = task
    names = list(theta.keys())
    fast = dict(theta)
    total = 0.0
    for i in range(STEPS):
        loss = w1_loss(torch.func.functional_call(model, fast, (xs,)), ms)
        grads = torch.autograd.grad(loss, list(fast.values()), create_graph=(order == "second"))
        fast = {n: fast[n] - rates[n][i] * g for n, g in zip(names, grads)}
        if weights[i] != 0:
            total = total + weights[i] * w1_loss(torch.func.functional_call(model, fast, (xq,)), mq)
    return total


# ANIL's head-only inner rate: large enough that its second-order terms are far from zero.
ANIL_RATE = 0.5


def anil_objective(model, theta, task, order):
    """L_q after STEPS inner SGD steps on the head's parameters alone (the body stays theta's)."""
    xs, ms, xq, mq = task
    head = [n for n in theta if n.startswith("head.")]
    fast = dict(theta)
    for _ in range(STEPS):
        loss = w1_loss(torch.func.functional_call(model, fast, (xs,)), ms)
        grads = torch.autograd.grad(loss, [fast[n] for n in head], create_graph=(order == "second"))
        fast.update({n: fast[n] - ANIL_RATE * g for n, g in zip(head, grads)})
    return w1_loss(torch.func.functional_call(model, fast, (xq,)), mq)


def support_features(model, theta, x):
    """The features the head reads (d1b's output), by a forward hook on the same call."""
    captured = []
    hook = model.d1b.register_forward_hook(lambda module, inputs, output: captured.append(output))
    try:
        torch.func.functional_call(model, theta, (x,))
    finally:
        hook.remove()
    return captured[0]


def prototype_objective(model, theta, task, order, head_only):
    """L_q after STEPS inner SGD steps from theta with the head offset by the support set's
    prototype head: z = -|F - c1|^2 + |F - c0|^2 = 2(c1 - c0).F + |c0|^2 - |c1|^2, c1 and c0
    the mean features over foreground and background pixels."""
    xs, ms, xq, mq = task
    features = support_features(model, theta, xs)
    c1 = (features * ms).sum((0, 2, 3)) / ms.sum()
    c0 = (features * (1 - ms)).sum((0, 2, 3)) / (1 - ms).sum()
    # theta_0 is a variable of its own (theta + 0): the inner steps take the partial gradient
    # in theta_0, as Proto-MAML fine-tunes an initialised head; only the outer gradient runs
    # through the prototypes as well.
    fast = {n: v + 0 for n, v in theta.items()}
    fast["head.weight"] = theta["head.weight"] + (2 * (c1 - c0)).reshape(1, -1, 1, 1)
    fast["head.bias"] = theta["head.bias"] + ((c0 * c0).sum() - (c1 * c1).sum()).reshape(1)
    moving = [n for n in theta if n.startswith("head.")] if head_only else list(theta)
    rate = ANIL_RATE if head_only else 0.01
    for _ in range(STEPS):
        loss = w1_loss(torch.func.functional_call(model, fast, (xs,)), ms)
        # The prototypes' graph is shared by every step's loss: keep it for the final backward.
        grads = torch.autograd.grad(loss, [fast[n] for n in moving], create_graph=(order == "second"), retain_graph=True)
        fast.update({n: fast[n] - rate * g for n, g in zip(moving, grads)})
    return w1_loss(torch.func.functional_call(model, fast, (xq,)), mq)


def make_task(seed):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")

    def sample(n):
        masks = torch.zeros(n, 1, 64, 64)
        for i in range(n):
            cy, cx = torch.randint(22, 42, (2,), generator=g).tolist()
            ry, rx = torch.randint(10, 24, (2,), generator=g).tolist()
            masks[i, 0] = ((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) < 1).float()
        images = 1.5 * masks + 0.6 * torch.randn(n, 1, 64, 64, generator=g)
        return images, masks

    return sample(K) + sample(Q)


def outputs(task, dtype):
    """Every reference output for one task, in the given precision."""
    model = UNetW1().to(dtype)
    names = [n for n, _ in model.named_parameters()]
    params = {n: v.to(dtype) for n, v in formula_parameters(model, gain=HE_GAIN).items()}
    task = tuple(t.to(dtype) for t in task)
    out = {}
    single = {n: torch.full((STEPS,), 0.01, dtype=dtype) for n in names}
    last_only = [0.0] * (STEPS - 1) + [1.0]
    for order in ["second", "first"]:
        theta = {n: params[n].clone().requires_grad_(True) for n in names}
        j = objective(model, theta, single, task, order, last_only)
        # First order cuts the graph at each inner gradient, so d/dtheta of the objective is
        # the query gradient at the adapted parameters.
        grads = torch.autograd.grad(j, [theta[n] for n in names])
        for n, g in zip(names, grads):
            out[f"{order}.{n}"] = g
        out[f"{order}.query_loss"] = j.detach().reshape(1)
    weights = msl_weights(STEPS, 30, 100)
    for order, prefix in [("second", "lslr_msl"), ("first", "lslr_msl_first")]:
        theta = {n: params[n].clone().requires_grad_(True) for n in names}
        rates = {n: r.to(dtype).clone().requires_grad_(True) for n, r in formula_rates(names).items()}
        j = objective(model, theta, rates, task, order, weights)
        grads = torch.autograd.grad(j, [theta[n] for n in names] + [rates[n] for n in names])
        if order == "second":
            for n, g in zip(names, grads[:len(names)]):
                out[f"{prefix}.{n}"] = g
        for n, g in zip(names, grads[len(names):]):
            out[f"{prefix}.inner_lr.{n}"] = g
        out[f"{prefix}.objective"] = j.detach().reshape(1)
    for order, prefix in [("second", "anil"), ("first", "anil_first")]:
        theta = {n: params[n].clone().requires_grad_(True) for n in names}
        j = anil_objective(model, theta, task, order)
        grads = torch.autograd.grad(j, [theta[n] for n in names])
        for n, g in zip(names, grads):
            out[f"{prefix}.{n}"] = g
        out[f"{prefix}.query_loss"] = j.detach().reshape(1)
    for order, head_only, prefix in [("second", False, "proto"), ("first", False, "proto_first"),
                                     ("second", True, "proto_anil")]:
        theta = {n: params[n].clone().requires_grad_(True) for n in names}
        j = prototype_objective(model, theta, task, order, head_only)
        grads = torch.autograd.grad(j, [theta[n] for n in names])
        for n, g in zip(names, grads):
            out[f"{prefix}.{n}"] = g
        out[f"{prefix}.query_loss"] = j.detach().reshape(1)
    return out, weights


def disagreement(a, b):
    """Relative L2 difference per group of outputs."""
    groups = {"second": lambda k: k.startswith("second."),
              "first": lambda k: k.startswith("first."),
              "lslr_msl": lambda k: k.startswith("lslr_msl."),
              "lslr_msl_first rates": lambda k: k.startswith("lslr_msl_first.inner_lr."),
              "anil": lambda k: k.startswith("anil."),
              "anil_first": lambda k: k.startswith("anil_first."),
              "proto": lambda k: k.startswith("proto."),
              "proto_first": lambda k: k.startswith("proto_first."),
              "proto_anil": lambda k: k.startswith("proto_anil.")}
    out = {}
    for name, selected in groups.items():
        keys = [k for k in b if selected(k)]
        x = torch.cat([a[k].flatten().double() for k in keys])
        y = torch.cat([b[k].flatten().double() for k in keys])
        out[name] = ((x - y).norm() / y.norm()).item()
    return out


def main():
    torch.set_num_threads(2)
    seed = 4242
    task = make_task(seed)
    ref, weights = outputs(task, torch.float64)
    metadata = {"generator": "Tests/Reference/make_maml_fixtures.py", "torch": torch.__version__,
                "precision": "float64", "task_seed": str(seed), "msl_weights": str(weights)}
    if "--measure-float32" in sys.argv:
        single, _ = outputs(task, torch.float32)
        errors = disagreement(single, ref)
        print("PyTorch float32 vs float64, relative L2:", {k: f"{v:.2e}" for k, v in errors.items()})
        metadata["torch_float32_errors"] = str(errors)
    tensors = {"support.images": task[0], "support.masks": task[1], "query.images": task[2], "query.masks": task[3]}
    tensors.update({k: v.to(torch.float32).contiguous() for k, v in ref.items()})
    out = os.path.join(os.path.dirname(__file__), "..", "SharedTests", "Fixtures", "maml_w1.safetensors")
    save_file(tensors, out, metadata=metadata)
    print("wrote", os.path.normpath(out))


if __name__ == "__main__":
    main()
