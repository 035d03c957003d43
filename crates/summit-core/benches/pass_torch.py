#!/usr/bin/env python3
"""The whole Summit recording + aggregation pass of `pass.rs`, written in PyTorch on CPU.

Rerun the comparison with (both on the same machine, same batch size):

    cargo bench -p summit-core --bench pass
    python3 crates/summit-core/benches/pass_torch.py --batch 8 --threads 2

Same computation as `summit_core::pipeline::aggregate_batch` under the `paper` preset, on
torchvision's GoogLeNet (InceptionV1) with random weights (`googlenet(weights=None,
aux_logits=False, init_weights=True)`, eval mode; nothing is downloaded), per batch of B random
224x224 images with random labels out of 1000 classes:

- forward pass with forward hooks capturing the 9 mixed (inception) outputs and the input of
  every branch convolution (the hop inputs of the `paper` preset: the module input for the
  1x1 branch and the two reduces, the reduce outputs for the two 3x3 convolutions, the
  max-pooled input for the pool projection);
- softmax, top-1 statistics and the probability of the true class;
- activations: channel amax (and arg-max) of every mixed output, Method 2 top-mass (3 %)
  selection counted into A[class, channel], top-10 dataset examples per channel;
- influences, for every one of the 54 convolution hops: batch norm folded into the kernel
  (once, before timing, as Summit does at load), the grouped convolution (groups = C_in,
  weight [C_in*C_out, 1, kh, kw], so output channel i*C_out + j is X_i * K[j, i]) at the
  hop's stride and padding, chunked over input channels so the intermediate stays under
  256 MiB (Summit's device default), amax over space, topk(5) per output channel, and the
  batch's (class, j, i) counts.

Not timed (this favours PyTorch): merging the batch's sparse influence counts into
running totals across batches (the script keeps the batch's unique keys and counts only).

`--closed-form-1x1` replaces the grouped convolution of 1x1 stride-1 hops with the exact
closed form max(K*max X, K*min X) that Summit uses, for a stronger PyTorch baseline.

Prints seconds per image (best and median over --repeats batches after one warm-up batch).
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision

MIXED = [
    "inception3a", "inception3b", "inception4a", "inception4b", "inception4c",
    "inception4d", "inception4e", "inception5a", "inception5b",
]
# the six convolutions of an inception module, in Summit's path / hop order
BRANCH_CONVS = ["branch1", "branch2.0", "branch2.1", "branch3.0", "branch3.1", "branch4.1"]
CHUNK_BYTES = 256 << 20
TOP_MASS = 0.03
TOP_K = 5
EXAMPLES = 10
CLASSES = 1000


def folded_kernel(basic):
    """Conv weight with the following batch norm folded in: K * gamma / sqrt(var + eps)."""
    bn = basic.bn
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (basic.conv.weight * scale[:, None, None, None]).detach().contiguous()


class Hop:
    def __init__(self, name, basic):
        self.name = name
        k = folded_kernel(basic)
        c_out, c_in, kh, kw = k.shape
        self.c_out, self.c_in, self.kh, self.kw = c_out, c_in, kh, kw
        self.stride = basic.conv.stride
        self.padding = basic.conv.padding
        # grouped weight: row i*C_out + j holds K[j, i]
        self.grouped = k.transpose(0, 1).reshape(c_in * c_out, 1, kh, kw).contiguous()
        self.k2d = k.reshape(c_out, c_in) if kh == kw == 1 else None  # 1x1 closed form
        self.input = None

    def influences(self, closed_form):
        """L [B, C_out, C_in] = amax over space of X_i * K[j, i]."""
        x = self.input
        b, c_in, h, w = x.shape
        if closed_form and self.kh == 1 and self.kw == 1 and self.stride == (1, 1) \
                and self.padding == (0, 0):
            flat = x.reshape(b, c_in, h * w)
            mx = flat.amax(2)[:, None, :]
            mn = flat.amin(2)[:, None, :]
            return torch.maximum(mx * self.k2d, mn * self.k2d)
        ho = (h + 2 * self.padding[0] - self.kh) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.kw) // self.stride[1] + 1
        slab = b * self.c_out * ho * wo * 4
        step = max(1, min(c_in, CHUNK_BYTES // max(slab, 1)))
        parts = []
        for i0 in range(0, c_in, step):
            i1 = min(c_in, i0 + step)
            y = F.conv2d(x[:, i0:i1], self.grouped[i0 * self.c_out:i1 * self.c_out],
                         None, self.stride, self.padding, 1, i1 - i0)
            parts.append(y.amax(dim=(2, 3)).reshape(b, i1 - i0, self.c_out))
        l = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        return l.transpose(1, 2)


def build(seed):
    torch.manual_seed(seed)
    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    model.eval()
    mixed_out = {}
    hops = []

    def keep_output(name):
        def hook(_m, _inp, out):
            mixed_out[name] = out
        return hook

    def keep_input(hop):
        def hook(_m, inp):
            hop.input = inp[0]
        return hook

    for name in MIXED:
        module = getattr(model, name)
        module.register_forward_hook(keep_output(name))
        for conv in BRANCH_CONVS:
            basic = module.get_submodule(conv)
            hop = Hop(f"{name}.{conv}", basic)
            basic.register_forward_pre_hook(keep_input(hop))
            hops.append(hop)
    return model, mixed_out, hops


class Aggregates:
    def __init__(self, model_mixed_channels):
        self.a = {n: torch.zeros(CLASSES, c, dtype=torch.int64)
                  for n, c in model_mixed_channels.items()}
        self.examples = {n: (torch.full((EXAMPLES, c), float("-inf")),
                             torch.zeros(EXAMPLES, c, dtype=torch.int64),
                             torch.zeros(EXAMPLES, c, dtype=torch.int64))
                         for n, c in model_mixed_channels.items()}
        self.class_images = torch.zeros(CLASSES, dtype=torch.int64)
        self.top1 = torch.zeros(CLASSES, dtype=torch.int64)
        self.true_prob = []
        self.batch_influence_counts = {}


def top_mass_mask(z, frac):
    """Method 2: per row, take channels by descending value while the already taken mass < frac."""
    total = z.sum(1, keepdim=True)
    share = torch.where(total > 0, z / total, torch.zeros_like(z))
    # ties: larger value first, then higher channel index (stable sort of the flipped row)
    flipped = share.flip(1)
    vals, order = torch.sort(flipped, dim=1, descending=True, stable=True)
    order = z.shape[1] - 1 - order
    taken_before = torch.cumsum(vals, 1) - vals
    take = (taken_before < frac) & (total > 0)
    mask = torch.zeros_like(z, dtype=torch.bool)
    mask.scatter_(1, order, take)
    return mask


def predictions_and_activations(agg, logits, outputs, names, ids, labels):
    """The batch's predictions and activations into `agg` (also `onnx_pass_torch.py`'s)."""
    b = logits.shape[0]
    # predictions
    probs = torch.softmax(logits.double(), 1).float()
    agg.class_images.index_add_(0, labels, torch.ones(b, dtype=torch.int64))
    agg.top1.index_add_(0, labels, (probs.argmax(1) == labels).long())
    agg.true_prob.append(probs.gather(1, labels[:, None])[:, 0])
    # activations
    for name in names:
        act = outputs[name]
        flat = act.reshape(b, act.shape[1], -1)
        z, arg = flat.max(2)
        agg.a[name].index_add_(0, labels, top_mass_mask(z, TOP_MASS).long())
        vals, idx, pos = agg.examples[name]
        cat_v = torch.cat([vals, z])
        cat_i = torch.cat([idx, ids[:, None].expand(b, z.shape[1])])
        cat_p = torch.cat([pos, arg])
        best, sel = cat_v.topk(EXAMPLES, dim=0)
        agg.examples[name] = (best, cat_i.gather(0, sel), cat_p.gather(0, sel))


@torch.inference_mode()
def aggregate_batch(model, mixed_out, hops, agg, images, ids, labels, closed_form):
    logits = model(images)
    predictions_and_activations(agg, logits, mixed_out, MIXED, ids, labels)
    # influences
    for hop in hops:
        l = hop.influences(closed_form)  # [B, C_out, C_in]
        top = l.topk(TOP_K, dim=2).indices  # [B, C_out, k]
        keys = (labels[:, None, None] * hop.c_out
                + torch.arange(hop.c_out)[None, :, None]) * hop.c_in + top
        agg.batch_influence_counts[hop.name] = torch.unique(keys, return_counts=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--closed-form-1x1", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, mixed_out, hops = build(0)
    assert len(hops) == 54
    channels = {}
    with torch.inference_mode():
        model(torch.zeros(1, 3, 224, 224))
        for n in MIXED:
            channels[n] = mixed_out[n].shape[1]
    agg = Aggregates(channels)
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(args.batch, 3, 224, 224, generator=gen)
    labels = torch.randint(0, CLASSES, (args.batch,), generator=gen)
    times = []
    for r in range(args.repeats + 1):
        ids = torch.arange(r * args.batch, (r + 1) * args.batch)
        t0 = time.perf_counter()
        aggregate_batch(model, mixed_out, hops, agg, images, ids, labels, args.closed_form_1x1)
        dt = time.perf_counter() - t0
        if r > 0:  # the first batch warms up
            times.append(dt / args.batch)
    mode = "closed-form 1x1" if args.closed_form_1x1 else "grouped conv for every hop"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={args.batch}, "
          f"{mode}: best {min(times) * 1e3:.1f} ms/image, median "
          f"{statistics.median(times) * 1e3:.1f} ms/image over {len(times)} batches")
    # the forward pass with its hooks alone, for the split
    fwd = []
    with torch.inference_mode():
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model(images)
            fwd.append((time.perf_counter() - t0) / args.batch)
    print(f"  of which the forward pass with hooks: best {min(fwd) * 1e3:.1f} ms/image")


if __name__ == "__main__":
    main()
