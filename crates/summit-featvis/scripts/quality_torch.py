#!/usr/bin/env python3
"""An independent PyTorch implementation of SPEC §4.1's feature visualization on the embedded
Fashion-MNIST model, to compare the quality measures of `cargo bench -p summit-featvis --bench
quality` with (issue 10).

It rebuilds the embedded network from its safetensors (torchvision-style keys, eval-mode batch
norm), takes every channel's maximum over the 10k embedded test images of the channel's mean
over positions, and optimises one image per channel for `--steps` Adam steps (lr 0.05) of the
`channel` objective, then reports per layer the median of (activation on its visualization ÷
dataset maximum) and the share of channels that rank first in their layer on their own
visualization (each channel's activation ÷ its dataset maximum).

Modes (`--mode`):
  spec           Lucid's method as SPEC §4.1 has it at 28²: grey Fourier parameterization
                 (spectrum scale 1 / max(freq, 1/28), orthonormal inverse DFT ÷ 4, sigmoid),
                 transforms scaled by 28/128 (pad 3 with 0.5, jitter 2, scale 0.9–1.1, rotation
                 −10°…10°), resized back to 28² — what summit-featvis does;
  no-resize      the same, the transformed image fed at its own size (~32²), as Lucid's TF
                 `render_vis` feeds it;
  no-transforms  the Fourier parameterization without transforms;
  pixel          sigmoid of free pixels, no transforms.

    python3 crates/summit-featvis/scripts/quality_torch.py --layer mixed4a --channels 40
"""
import argparse, gzip, math, pathlib, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

ROOT = pathlib.Path(__file__).resolve().parents[3]
MODS = [("mixed3a", 48, 24, 32, 48, 8, 16, 16), ("mixed3b", 104, 32, 32, 48, 8, 16, 16),
        ("mixed4a", 112, 48, 48, 64, 12, 24, 24)]
MEAN, STD = 0.2860, 0.3530


class Basic(nn.Module):
    def __init__(self, ci, co, k):
        super().__init__()
        self.conv = nn.Conv2d(ci, co, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(co, eps=1e-3)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, ci, c1, r3, c3, r5, c5, pp):
        super().__init__()
        self.branch1 = Basic(ci, c1, 1)
        self.branch2 = nn.Sequential(Basic(ci, r3, 1), Basic(r3, c3, 3))
        self.branch3 = nn.Sequential(Basic(ci, r5, 1), Basic(r5, c5, 5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), Basic(ci, pp, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = Basic(1, 16, 3), Basic(16, 48, 3)
        for name, *a in MODS:
            setattr(self, name, Inception(*a))
        self.fc = nn.Linear(160, 10)

    def taps(self, x):
        x = self.conv2(F.max_pool2d(self.conv1(x), 2, 2))
        a = self.mixed3a(x)
        b = self.mixed3b(a)
        c = self.mixed4a(F.max_pool2d(b, 3, 2, 1))
        return [a, b, c]


def load():
    net = Net()
    net.load_state_dict(load_file(str(ROOT / "crates/summit-model/assets/fashion_inception.safetensors")))
    return net.eval()


def test_images():
    raw = gzip.open(ROOT / "assets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()[16:]
    return torch.tensor(np.frombuffer(raw, np.uint8).reshape(-1, 1, 28, 28).astype(np.float32) / 255)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layer", default="mixed4a", choices=[m[0] for m in MODS])
    ap.add_argument("--channels", type=int, default=0, help="the first N channels (0: all)")
    ap.add_argument("--steps", type=int, default=512)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--mode", default="spec", choices=["spec", "no-resize", "no-transforms", "pixel"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    net = load()
    for p in net.parameters():
        p.requires_grad_(False)
    L = [m[0] for m in MODS].index(a.layer)
    x = test_images()
    with torch.no_grad():
        ds_max = torch.cat([net.taps((x[i:i + 1000] - MEAN) / STD)[L].mean((2, 3))
                            for i in range(0, len(x), 1000)]).max(0).values
    n_ch = ds_max.numel() if a.channels == 0 else min(a.channels, ds_max.numel())
    s = 28
    fy = np.fft.fftfreq(s)[:, None]
    fx = np.fft.rfftfreq(s)[None, :]
    scale = torch.tensor(1.0 / np.maximum(np.sqrt(fx * fx + fy * fy), 1.0 / s) * s, dtype=torch.float32)

    def render(p):
        if a.mode == "pixel":
            return torch.sigmoid(p)
        img = torch.fft.irfft2(torch.complex(p[:, 0], p[:, 1]) * scale, s=(s, s)) / 4.0
        return torch.sigmoid(img[:, None])

    def transform(v):
        if a.mode in ("no-transforms", "pixel"):
            return v
        v = F.pad(v, (3, 3, 3, 3), value=0.5)
        ox, oy = rng.integers(0, 2, 2)
        v = v[:, :, oy:oy + v.shape[2] - 1, ox:ox + v.shape[3] - 1]
        sc = rng.choice([1 + (i - 5) / 50 for i in range(11)])
        v = F.interpolate(v, size=(round(v.shape[2] * sc),) * 2, mode="bilinear", align_corners=False)
        ang = rng.choice(list(range(-10, 11)) + [0] * 5) * math.pi / 180
        th = torch.tensor([[math.cos(ang), -math.sin(ang), 0], [math.sin(ang), math.cos(ang), 0]],
                          dtype=torch.float32)[None].repeat(v.shape[0], 1, 1)
        v = F.grid_sample(v, F.affine_grid(th, v.shape, align_corners=False), align_corners=False)
        if a.mode == "no-resize":
            return v
        return F.interpolate(v, size=(28, 28), mode="bilinear", align_corners=False)

    shape = (n_ch, 1, s, s) if a.mode == "pixel" else (n_ch, 2, s, s // 2 + 1)
    p = (torch.randn(shape) * 0.01).requires_grad_()
    opt = torch.optim.Adam([p], lr=a.lr)
    idx = torch.arange(n_ch)
    t0 = time.time()
    for _ in range(a.steps):
        act = net.taps((transform(render(p)) - MEAN) / STD)[L].mean((2, 3))
        opt.zero_grad()
        (-act[idx, idx].sum()).backward()
        opt.step()
    with torch.no_grad():
        act = net.taps((render(p) - MEAN) / STD)[L].mean((2, 3))
    ratio = act[idx, idx] / ds_max[:n_ch]
    first = ((act / ds_max).argmax(1) == idx).float().mean()
    print(f"{a.layer} {n_ch} channels, mode {a.mode}, {a.steps} steps: median ratio "
          f"{ratio.median().item():.2f} (min {ratio.min().item():.2f}), first in its layer "
          f"{100 * first.item():.1f} %, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
