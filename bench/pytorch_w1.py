"""PyTorch timings of the W1 operations MedMAML benchmarks, on the same machine.

    engine: forward, forward+backward, Hessian-vector product (double backward), 5 images,
            one thread (torch.set_num_threads(1)).
    maml:   W1 meta-gradients (5 inner SGD steps, lr 0.01, K = Q = 5), second order
            (create_graph=True) or first order, as tasks per second.
Both take --image-size (W1: 64, W2: 128; docs/WORKLOADS.md).

Prints `name value` lines. PyTorch comes from PyPI (pip install torch); it is a comparison
only, never a run-time dependency of MedMAML.
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "Reference"))
from w1 import UNetW1, w1_loss  # noqa: E402


def median_ms(fn, repetitions, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def engine(args):
    torch.set_num_threads(1)
    torch.manual_seed(1)
    model = UNetW1()
    params = list(model.parameters())
    x = torch.randn(args.batch, 1, args.image_size, args.image_size)
    m = (torch.rand(args.batch, 1, args.image_size, args.image_size) < 0.3).float()
    v = [torch.randn_like(p) for p in params]

    def forward():
        with torch.no_grad():
            w1_loss(model(x), m)

    def forward_backward():
        torch.autograd.grad(w1_loss(model(x), m), params)

    def hvp():
        g = torch.autograd.grad(w1_loss(model(x), m), params, create_graph=True)
        torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, v)), params)

    for name, fn in [("forward", forward), ("forward+backward", forward_backward),
                     ("hessian-vector product", hvp)]:
        print(f"{name.replace(' ', '_')}_ms {median_ms(fn, args.repetitions):.3f}")


def make_task(generator, k=5, q=5, size=64):
    """A W1-shaped task (W2 at size 128): blob masks and images where the blob is brighter,
    plus noise; blob sizes and margins scale with the image."""
    scale = size // 64
    def sample(n):
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        masks = torch.zeros(n, 1, size, size)
        for i in range(n):
            cy, cx = torch.randint(16 * scale, size - 16 * scale, (2,), generator=generator)
            r = torch.randint(6 * scale, 14 * scale, (1,), generator=generator)
            masks[i, 0] = (((yy - cy) ** 2 + (xx - cx) ** 2) < r ** 2).float()
        images = masks * 1.5 + torch.randn(n, 1, size, size, generator=generator)
        return images, masks
    return sample(k) + sample(q)


def meta_gradient(model, names, task, order, steps=5, lr=0.01):
    xs, ms, xq, mq = task
    params = {n: p for n, p in model.named_parameters()}
    fast = dict(params)
    for _ in range(steps):
        loss = w1_loss(torch.func.functional_call(model, fast, (xs,)), ms)
        grads = torch.autograd.grad(loss, list(fast.values()), create_graph=(order == "second"))
        fast = {n: p - lr * g for (n, p), g in zip(fast.items(), grads)}
    query = w1_loss(torch.func.functional_call(model, fast, (xq,)), mq)
    wrt = list(params.values()) if order == "second" else list(fast.values())
    return torch.autograd.grad(query, wrt)


def maml(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = UNetW1()
    names = [n for n, _ in model.named_parameters()]
    generator = torch.Generator().manual_seed(args.seed)
    tasks = [make_task(generator, size=args.image_size) for _ in range(args.tasks)]
    meta_gradient(model, names, tasks[0], args.order)  # warm-up
    start = time.perf_counter()
    for t in tasks:
        meta_gradient(model, names, t, args.order)
    elapsed = time.perf_counter() - start
    print(f"tasks_per_second {args.tasks / elapsed:.4f}")


def memory(args):
    """One second-order W1 (W2 with --image-size 128) meta-gradient with --inner-steps steps (peak RSS is read outside)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = UNetW1()
    names = [n for n, _ in model.named_parameters()]
    task = make_task(torch.Generator().manual_seed(0), size=args.image_size)
    grads = meta_gradient(model, names, task, "second", steps=args.inner_steps)
    print(f"gradient_norm {torch.sqrt(sum((g * g).sum() for g in grads)).item():.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("engine")
    e.add_argument("--batch", type=int, default=5)
    e.add_argument("--repetitions", type=int, default=20)
    e.add_argument("--image-size", type=int, default=64)
    m = sub.add_parser("maml")
    m.add_argument("--order", choices=["second", "first"], default="second")
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--tasks", type=int, default=8)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--image-size", type=int, default=64)
    mem = sub.add_parser("memory")
    mem.add_argument("--inner-steps", type=int, default=5)
    mem.add_argument("--image-size", type=int, default=64)
    a = parser.parse_args()
    {"engine": engine, "maml": maml, "memory": memory}[a.command](a)
