#!/usr/bin/env python3
"""The Summit pass of `onnx_pass.rs` over torchvision ResNets, written in PyTorch the fast way.

Rerun the comparison with (both on the same machine, same batch size, same threads):

    SUMMIT_ONNX_MODELS=resnet50 cargo bench -p summit-core --bench onnx_pass
    python3 crates/summit-core/benches/onnx_pass_torch.py --model resnet50 --batch 8 --threads 2

The same computation as `summit_core::pipeline::aggregate_batch` under the `paper` preset on
the model's description (SPEC §2.1: the summary layers are the residual blocks; into each, a
chain of the block's convolutions and a skip — the identity, or the downsampling convolution),
per batch of B random 224x224 images with random labels out of 1000 classes, on
`torchvision.models.<model>(weights=None)` in eval mode (random weights; nothing is downloaded):

- the forward pass with hooks keeping every block output and every convolution's input;
- softmax, top-1 statistics and the probability of the true class;
- activations: channel amax (and arg-max) of every block output, the top-mass (3 %) selection
  counted into A[class, channel], top-10 dataset examples per channel;
- influences, for every hop (batch norm folded into the kernel once, before timing, as Summit
  does at load): L[b, j, i] = max over positions of X_i * K[j, i] —
  * 1x1 hops in closed form, max(K * max X, K * min X) (strided: X subsampled first);
  * every other hop as `unfold` + one batched matmul per chunk of input channels
    ([C_in, C_out, kh*kw] @ [C_in, kh*kw, B*P], under 256 MiB) + amax over positions;
  * the identity skip: max X_j, its one candidate;
  then `topk(5)` over input channels and the batch's (class, j, i) counts (`torch.unique`).

Not timed (this favours PyTorch): merging the batch's counts into running totals.

Prints milliseconds per image (best and median over --repeats batches after one warm-up), and
the forward pass with hooks alone.
"""

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the predictions, activations and constants of the GoogLeNet script beside this one
from pass_torch import CHUNK_BYTES, CLASSES, TOP_K, Aggregates, predictions_and_activations  # noqa: E402


def folded(conv, bn):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (conv.weight * scale[:, None, None, None]).detach().contiguous()


class Hop:
    """One convolution (or the identity) of a path: its folded kernel and, at run time, its input."""

    def __init__(self, name, conv=None, bn=None, channels=None):
        self.name = name
        self.input = None
        if conv is None:  # identity skip over `channels` channels
            self.identity = True
            self.c_out = self.c_in = channels
            return
        self.identity = False
        k = folded(conv, bn)
        self.c_out, self.c_in, self.kh, self.kw = k.shape
        self.stride, self.padding = conv.stride, conv.padding
        self.k2d = k.reshape(self.c_out, self.c_in) if self.kh == self.kw == 1 else None
        # [C_in, C_out, kh*kw] for the batched matmul
        self.kb = k.reshape(self.c_out, self.c_in, -1).permute(1, 0, 2).contiguous()

    def influences(self):
        """top-5 input channels per (image, output channel): [B, C_out, k] (identity: [B, C, 1])."""
        x = self.input
        b, c, h, w = x.shape
        if self.identity:
            return torch.arange(c).expand(b, c)[:, :, None]
        if self.k2d is not None and self.padding == (0, 0):
            if self.stride != (1, 1):
                x = x[:, :, :: self.stride[0], :: self.stride[1]]
            flat = x.reshape(b, c, -1)
            mx = flat.amax(2)[:, None, :]
            mn = flat.amin(2)[:, None, :]
            l = torch.maximum(mx * self.k2d, mn * self.k2d)
            return l.topk(TOP_K, dim=2).indices
        u = F.unfold(x, (self.kh, self.kw), padding=self.padding, stride=self.stride)
        p = u.shape[2]
        taps = self.kh * self.kw
        u = u.reshape(b, c, taps, p).permute(1, 2, 0, 3).reshape(c, taps, b * p)
        step = max(1, min(c, CHUNK_BYTES // max(self.c_out * b * p * 4, 1)))
        parts = []
        for i0 in range(0, c, step):
            i1 = min(c, i0 + step)
            y = torch.bmm(self.kb[i0:i1], u[i0:i1])  # [i, C_out, B*P]
            parts.append(y.reshape(i1 - i0, self.c_out, b, p).amax(3))
        l = parts[0] if len(parts) == 1 else torch.cat(parts, 0)  # [C_in, C_out, B]
        return l.permute(2, 1, 0).topk(TOP_K, dim=2).indices


def build(name, seed):
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None).eval()
    outputs, hops = {}, []

    def keep_output(key):
        def hook(_m, _inp, out):
            outputs[key] = out
        return hook

    def keep_input(hop):
        def hook(_m, inp):
            hop.input = inp[0]
        return hook

    def keep_block_input(hop):
        def hook(_m, inp):
            hop.input = inp[0]
        return hook

    layers = []
    for stage in ["layer1", "layer2", "layer3", "layer4"]:
        for i, block in enumerate(getattr(model, stage)):
            key = f"{stage}.{i}"
            layers.append(key)
            block.register_forward_hook(keep_output(key))
            convs = [(n, m) for n, m in block.named_children() if n.startswith("conv")]
            for n, conv in convs:
                bn = getattr(block, n.replace("conv", "bn"))
                hop = Hop(f"{key}.{n}", conv, bn)
                conv.register_forward_pre_hook(keep_input(hop))
                hops.append(hop)
            if block.downsample is not None:
                hop = Hop(f"{key}.downsample", block.downsample[0], block.downsample[1])
            else:
                hop = Hop(f"{key}.identity", channels=convs[0][1].in_channels)
            block.register_forward_pre_hook(keep_block_input(hop))
            hops.append(hop)
    return model, layers, outputs, hops


@torch.inference_mode()
def aggregate_batch(model, layers, outputs, hops, agg, images, ids, labels):
    logits = model(images)
    predictions_and_activations(agg, logits, outputs, layers, ids, labels)
    for hop in hops:
        top = hop.influences()
        keys = (labels[:, None, None] * hop.c_out
                + torch.arange(hop.c_out)[None, :, None]) * hop.c_in + top
        agg.batch_influence_counts[hop.name] = torch.unique(keys, return_counts=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet50", choices=["resnet18", "resnet34", "resnet50"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, layers, outputs, hops = build(args.model, 0)
    with torch.inference_mode():
        model(torch.zeros(1, 3, 224, 224))
    channels = {k: outputs[k].shape[1] for k in layers}
    agg = Aggregates(channels)
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(args.batch, 3, 224, 224, generator=gen)
    labels = torch.randint(0, CLASSES, (args.batch,), generator=gen)
    times = []
    for r in range(args.repeats + 1):
        ids = torch.arange(r * args.batch, (r + 1) * args.batch)
        t0 = time.perf_counter()
        aggregate_batch(model, layers, outputs, hops, agg, images, ids, labels)
        if r > 0:
            times.append((time.perf_counter() - t0) / args.batch)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.model}, "
          f"B={args.batch}, {len(layers)} summary layers, {len(hops)} hops: best "
          f"{min(times) * 1e3:.1f} ms/image, median {statistics.median(times) * 1e3:.1f} "
          f"ms/image over {len(times)} batches")
    fwd = []
    with torch.inference_mode():
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model(images)
            fwd.append((time.perf_counter() - t0) / args.batch)
    print(f"  of which the forward pass with hooks: best {min(fwd) * 1e3:.1f} ms/image")


if __name__ == "__main__":
    main()
