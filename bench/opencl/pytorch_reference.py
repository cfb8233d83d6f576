#!/usr/bin/env python3
"""PyTorch's training step of the Table 1 network on the GPU that pbnn_opencl_step measures, so the two
can be compared on one machine (design.md's reference figures come from an H100).

Same network as examples/vgg_networks.hpp (real weights and ReLU: PyTorch's plain fp32 step), Adam,
cuDNN, eager mode, random data already on the GPU. fp32 turns TF32 off in cuDNN and cuBLAS; tf32 turns
it on (PyTorch's default for convolutions). Prints one markdown row per (precision, batch): the median
of --repeats timings of --steps steps each.

    python3 bench/opencl/pytorch_reference.py [--batches 8,256] [--steps 200] [--repeats 5]
"""
import argparse
import statistics
import time

import torch
from torch import nn


def table1() -> nn.Sequential:
    def conv(cin, cout, pool):
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        return layers + [nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *conv(3, 128, False), *conv(128, 128, True), *conv(128, 128, False), *conv(128, 256, True),
        *conv(256, 256, False), *conv(256, 512, True), nn.Flatten(),
        nn.Linear(8192, 1024, bias=False), nn.BatchNorm1d(1024), nn.ReLU(),
        nn.Linear(1024, 1024, bias=False), nn.BatchNorm1d(1024), nn.ReLU(),
        nn.Linear(1024, 10, bias=False), nn.BatchNorm1d(10))


def step_ms(batch: int, steps: int, repeats: int) -> float:
    torch.manual_seed(1)
    model = table1().cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (batch,), device="cuda")

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    for _ in range(20):  # cuDNN's algorithm choice and the allocator settle here
        step()
    torch.cuda.synchronize()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()
        loss.item()  # like a trainer reading the loss once per logging interval
        torch.cuda.synchronize()
        timings.append((time.perf_counter() - start) * 1e3 / steps)
    return statistics.median(timings)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="8,256")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    print(f"# {torch.cuda.get_device_name()}, PyTorch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    print("| precision | batch | ms per step (median) | s per 50 000-image epoch |")
    print("|---|---|---|---|")
    for precision in ("fp32", "tf32"):
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        for batch in (int(b) for b in args.batches.split(",")):
            ms = step_ms(batch, args.steps, args.repeats)
            print(f"| {precision} | {batch} | {ms:.2f} | {ms * 50000 / batch / 1e3:.2f} |", flush=True)


if __name__ == "__main__":
    main()
