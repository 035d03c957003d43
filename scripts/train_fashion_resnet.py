"""Trains the embedded residual model: a small ResNet (three stages of two basic blocks,
16/32/64 channels, 28x28 greyscale input) on the 60k Fashion-MNIST training images, seeded,
and exports it to ONNX (TorchScript exporter, eval mode, batch norm folded) as
crates/summit-model/assets/fashion_resnet.onnx, with its test accuracy printed per epoch.

Input: (pixel/255 - 0.2860) / 0.3530, as the embedded inception network
(summit_data::Preprocess::fashion_mnist). Data: Debian's dataset-fashion-mnist
(/usr/share/datasets/fashion-mnist). CPU PyTorch, about 10 minutes on 2 cores.

Run: python3 scripts/train_fashion_resnet.py [--epochs 8] [--data DIR] [--out FILE]
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.2860, 0.3530


def idx(path):
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[2:4], "big")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims), magic


def load(folder, split):
    x, _ = idx(os.path.join(folder, f"{split}-images-idx3-ubyte.gz"))
    y, _ = idx(os.path.join(folder, f"{split}-labels-idx1-ubyte.gz"))
    x = (torch.from_numpy(x.copy()).float()[:, None] / 255 - MEAN) / STD
    return x, torch.from_numpy(y.copy()).long()


class Block(nn.Module):
    """torchvision's BasicBlock: conv3x3-bn-relu-conv3x3-bn, plus the identity or a 1x1
    downsample; ReLU after the sum."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class FashionResNet(nn.Module):
    def __init__(self, widths=(16, 32, 64), classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        layers = []
        c = widths[0]
        for s, w in enumerate(widths):
            layers.append(nn.Sequential(Block(c, w, 1 if s == 0 else 2), Block(w, w, 1)))
            c = w
        self.layer1, self.layer2, self.layer3 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def accuracy(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += (model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "crates", "summit-model", "assets", "fashion_resnet.onnx"))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=20191019)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    model = FashionResNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = a.epochs * (len(xtr) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=steps)
    g = torch.Generator().manual_seed(a.seed)
    for epoch in range(a.epochs):
        t0 = time.time()
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr) - 127, 128):
            b = perm[i:i + 128]
            xb = xtr[b]
            # light augmentation: random horizontal flips, random shifts of up to 2 pixels
            flip = torch.rand(len(b), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(xb), ytr[b], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(model, xte, yte)
        print(f"epoch {epoch + 1}/{a.epochs}: test accuracy {acc:.4f} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    x = xte[:1]
    torch.onnx.export(model, x, a.out, dynamo=False, opset_version=17, do_constant_folding=True,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}})
    print(f"wrote {a.out} ({os.path.getsize(a.out) // 1024} KiB), test accuracy {accuracy(model, xte, yte):.4f}")


if __name__ == "__main__":
    main()
