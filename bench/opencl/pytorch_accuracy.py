#!/usr/bin/env python3
"""pbnn's training recipe re-implemented in PyTorch, to tell what the method reaches from what our
implementation reaches: the same networks, schemes, data split, augmentation, schedules and evaluation
as train_vgg / train_mlp (fp32 only), one run per invocation, one CSV line per epoch.

Schemes as in examples/trainer_cli.hpp:
  float  real weights, ReLU
  det    sign(P) weights (straight-through gradient where |P| <= 1, P clipped to [-1, 1]), ReLU
  bnn    det's weights, sign activations (straight-through gradient where |x| <= 1)
  prog   theta = clamp(v P, -1, 1) for weights and activations (weights: gradient v inside; activations:
         straight-through where |x| <= 1, pbnn's default), v = 1000^(e / (E - 1)) per epoch,
         binarized layers' learning rate x3
The last dense layer stays real. Evaluation is always the binary network (sign(P) weights, sign
activations, sign(0) = -1) after re-measuring the batch-norm statistics through it on up to 10 000
training images (pbnn's --bn-calibration default). Not reproduced: batch norm as a hard threshold from
v >= 500 in training (it changes clamp(v x) only where |x| < 1/500).

Distillation (a trial, not in pbnn's trainers): --save-model writes a run's state_dict; --teacher FILE
(a --scheme float model of the same network) adds a T^2 KL(softmax(teacher / T) || softmax(student / T))
to (1 - a) CE, with a = --kd-alpha and T = --kd-temp.

    python3 bench/opencl/pytorch_accuracy.py --network table1 --data cifar10-subset --scheme prog \
        [--train-batches 1-4 --val-batches 5 --epochs 50 --batch 32 --seed 1 --csv out.csv]
    python3 bench/opencl/pytorch_accuracy.py --network mlp --data /usr/share/datasets/fashion-mnist \
        --scheme prog --epochs 30 --batch 100 --lr-step 12
"""
import argparse
import gzip
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

state = {"v": 1.0, "binary": False}  # binary: the network evaluated (and calibrated) is sign(theta)


def sign(x):
    return torch.where(x > 0, 1.0, -1.0).to(x.dtype)


class SignSTE(torch.autograd.Function):
    """sign(x) forward, the gradient passed where |x| <= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


class ClampSTE(torch.autograd.Function):
    """clamp(v x, -1, 1) forward, the gradient passed where |x| <= 1 (pbnn's activation_gradient::straight_through)."""

    @staticmethod
    def forward(ctx, x, v):
        ctx.save_for_backward(x)
        return (v * x).clamp(-1, 1)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype), None


def binarized_weight(p, scheme):
    if scheme == "real":
        return p
    if state["binary"]:
        return sign(p)
    if scheme == "sign":
        return SignSTE.apply(p)
    return (state["v"] * p).clamp(-1, 1)  # progressive: gradient v inside |v P| <= 1, 0 outside


class Conv(nn.Conv2d):
    def __init__(self, cin, cout, scheme):
        super().__init__(cin, cout, 3, padding=1, bias=False)
        self.scheme = scheme

    def forward(self, x):
        return F.conv2d(x, binarized_weight(self.weight, self.scheme), padding=1)


class Dense(nn.Linear):
    def __init__(self, cin, cout, scheme):
        super().__init__(cin, cout, bias=False)
        self.scheme = scheme

    def forward(self, x):
        return F.linear(x, binarized_weight(self.weight, self.scheme))


class Act(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        if self.kind == "relu":
            return F.relu(x)
        if state["binary"]:
            return sign(x)
        return SignSTE.apply(x) if self.kind == "sign" else ClampSTE.apply(x, state["v"])


def init_like_pbnn(module):
    # P ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (pbnn's initialization); batch norm gamma 1, beta 0.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            bound = 1.0 / math.sqrt(m.weight[0].numel())
            nn.init.uniform_(m.weight, -bound, bound)


def network(name, scheme):
    weights = {"float": "real", "det": "sign", "bnn": "sign", "prog": "prog"}[scheme]
    act = {"float": "relu", "det": "relu", "bnn": "sign", "prog": "prog"}[scheme]
    if name == "mlp":
        layers = [nn.Flatten()]
        for cin, cout in ((784, 1000), (1000, 500)):
            layers += [Dense(cin, cout, weights), nn.BatchNorm1d(cout), Act(act)]
        layers += [Dense(500, 10, "real"), nn.BatchNorm1d(10)]
        return nn.Sequential(*layers)

    def conv(cin, cout, pool):
        return [Conv(cin, cout, weights)] + ([nn.MaxPool2d(2)] if pool else []) + [nn.BatchNorm2d(cout), Act(act)]

    return nn.Sequential(
        *conv(3, 128, False), *conv(128, 128, True), *conv(128, 128, False), *conv(128, 256, True),
        *conv(256, 256, False), *conv(256, 512, True), nn.Flatten(),
        Dense(8192, 1024, weights), nn.BatchNorm1d(1024), Act(act),
        Dense(1024, 1024, weights), nn.BatchNorm1d(1024), Act(act),
        Dense(1024, 10, "real"), nn.BatchNorm1d(10))


def batch_numbers(spec):
    if spec == "test":
        return ["test_batch"]
    lo, _, hi = spec.partition("-")
    return [f"data_batch_{i}" for i in range(int(lo), int(hi or lo) + 1)]


def load_cifar(folder, spec):
    images, labels = [], []
    for name in batch_numbers(spec):
        raw = (Path(folder) / f"{name}.bin").read_bytes()
        if len(raw) % 3073:
            sys.exit(f"{folder}/{name}.bin: {len(raw)} bytes, not whole 3073-byte records")
        records = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(-1, 3073)
        labels.append(records[:, 0].long())
        images.append(records[:, 1:].reshape(-1, 3, 32, 32).float() / 255)
    return torch.cat(images), torch.cat(labels)


def load_idx(folder, split):
    def read(stem, header):
        for name in (stem, stem + ".gz"):
            path = Path(folder) / name
            if path.exists():
                data = path.read_bytes()
                data = gzip.decompress(data) if name.endswith(".gz") else data
                return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8)
        sys.exit(f"{folder}: no {stem}[.gz]")

    prefix = "train" if split == "train" else "t10k"
    images = read(f"{prefix}-images-idx3-ubyte", 16)
    labels = read(f"{prefix}-labels-idx1-ubyte", 8)
    return images.reshape(-1, 1, 28, 28).float() / 255, labels.long()


def crop_flip(x, pad, generator):
    # pbnn::crop_flip: shift by dx, dy in [-pad, pad] (zeros shifted in), then mirror with probability 1/2.
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
    rows = (torch.arange(h, device=dev)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w, device=dev)[None, :] + dx[:, None])[:, None, None, :]
    out = padded[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    mirror = torch.rand(n, generator=generator, device=x.device) < 0.5
    return torch.where(mirror[:, None, None, None], out.flip(3), out)


@torch.no_grad()
def calibrate(model, x, images, batch):
    # Batch-norm running statistics re-measured through the binary network: the cumulative average of
    # the batch statistics over the first `images` training images (pbnn::calibrate_batch_norm).
    state["binary"] = True
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    for s in range(0, min(images, x.shape[0]), batch):
        model(x[s:min(s + batch, images)])
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1


@torch.no_grad()
def accuracy(model, x, y, batch=500):
    state["binary"] = True
    model.eval()
    correct = sum((model(x[s:s + batch]).argmax(1) == y[s:s + batch]).sum().item() for s in range(0, x.shape[0], batch))
    return correct / x.shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", choices=("table1", "mlp"), default="table1")
    ap.add_argument("--data", required=True)
    ap.add_argument("--scheme", choices=("float", "det", "bnn", "prog"), default="prog")
    ap.add_argument("--train-batches", default="1-4")
    ap.add_argument("--val-batches", default="5")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-step", type=int, default=20)
    ap.add_argument("--bin-lr-scale", type=float, default=0, help="0: 3 for prog, 1 otherwise")
    ap.add_argument("--crop-padding", type=int, default=4, help="table1: the crop's largest shift (0: flips only)")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--bn-calibration", type=int, default=10000)
    ap.add_argument("--train-limit", type=int, default=0, help="use only the first N training images (0: all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csv", default="")
    ap.add_argument("--save-model", default="", help="write the trained model's state_dict here")
    ap.add_argument("--teacher", default="", help="distil from this float model (a --save-model file of --scheme float)")
    ap.add_argument("--kd-alpha", type=float, default=1.0, help="weight of the distillation term (1 - a: the labels)")
    ap.add_argument("--kd-temp", type=float, default=1.0)
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)
    if args.network == "table1":
        xtr, ytr = load_cifar(args.data, args.train_batches)
        xte, yte = load_cifar(args.data, args.val_batches)
        mean = xtr.mean((0, 2, 3), keepdim=True)
        std = xtr.std((0, 2, 3), keepdim=True)
        xtr, xte = (xtr - mean) / std, (xte - mean) / std  # train_vgg: per channel, the training set's
    else:
        xtr, ytr = load_idx(args.data, "train")
        xte, yte = load_idx(args.data, "test")
    if args.train_limit:
        xtr, ytr = xtr[:args.train_limit], ytr[:args.train_limit]
    xtr, ytr, xte, yte = (t.to(device) for t in (xtr, ytr, xte, yte))

    model = network(args.network, args.scheme).to(device)
    init_like_pbnn(model)
    scale = args.bin_lr_scale or (3.0 if args.scheme == "prog" else 1.0)
    binarized = [m.weight for m in model.modules() if isinstance(m, (Conv, Dense)) and m.scheme != "real"]
    ids = {id(p) for p in binarized}
    others = [p for p in model.parameters() if id(p) not in ids]
    opt = torch.optim.Adam([{"params": binarized, "lr_scale": scale}, {"params": others, "lr_scale": 1.0}], lr=args.lr)
    augment = args.network == "table1" and not args.no_augment
    teacher = None
    if args.teacher:
        teacher = network(args.network, "float").to(device)
        teacher.load_state_dict(torch.load(args.teacher, map_location=device))
        teacher.eval()  # its running statistics: the logits of a trained float network

    out = open(args.csv, "w") if args.csv else sys.stdout
    print("epoch,v,lr,loss,train_accuracy,test_accuracy,seconds", file=out, flush=True)
    for epoch in range(args.epochs):
        state["v"] = 1000.0 ** (epoch / max(1, args.epochs - 1)) if args.scheme == "prog" else 1.0
        lr = args.lr * 0.1 ** (epoch // args.lr_step)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_scale"]
        start = time.perf_counter()
        state["binary"] = False
        model.train()
        order = torch.randperm(xtr.shape[0], generator=gen, device=device)
        loss_sum, batches = torch.zeros((), device=device), xtr.shape[0] // args.batch
        for b in range(batches):
            idx = order[b * args.batch:(b + 1) * args.batch]
            x = xtr[idx]
            if augment:
                x = crop_flip(x, args.crop_padding, gen)
            logits = model(x)
            loss = F.cross_entropy(logits, ytr[idx])
            if teacher is not None:
                with torch.no_grad():
                    soft = F.softmax(teacher(x) / args.kd_temp, 1)
                kd = F.kl_div(F.log_softmax(logits / args.kd_temp, 1), soft, reduction="batchmean")
                loss = (1 - args.kd_alpha) * loss + args.kd_alpha * args.kd_temp ** 2 * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if args.scheme in ("det", "bnn"):
                with torch.no_grad():
                    for p in binarized:
                        p.clamp_(-1, 1)
            loss_sum += loss.detach()
        if args.bn_calibration:
            calibrate(model, xtr, args.bn_calibration, 100 if args.network == "mlp" else args.batch)
        train_acc, test_acc = accuracy(model, xtr, ytr), accuracy(model, xte, yte)
        print(f"{epoch + 1},{state['v']:.6g},{lr:.6g},{loss_sum.item() / batches:.6f},{train_acc:.6f},{test_acc:.6f},"
              f"{time.perf_counter() - start:.2f}", file=out, flush=True)
    if args.save_model:
        torch.save(model.state_dict(), args.save_model)


if __name__ == "__main__":
    main()
