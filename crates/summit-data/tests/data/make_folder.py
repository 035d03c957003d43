#!/usr/bin/env python3
"""Generate the committed image-folder fixture and its preprocessing references.

Run from anywhere:  python3 crates/summit-data/tests/data/make_folder.py

Writes (deterministically, numpy seed 2019):

  folder/cat/cat_01.png       RGB noise, 40x30 (w x h)
  folder/cat/cat_02.jpg       RGB noise JPEG, 4:4:4, quality 95, 40x30
  folder/cat/grey.png         greyscale (mode L) noise, 40x30
  folder/cat/truncated.jpg    the first half of a valid JPEG (corrupt)
  folder/cat/notes.txt        a non-image file (ignored and reported)
  folder/dog/DOG_03.JPEG      RGB noise JPEG with an upper-case extension, 47x30
  folder/dog/empty.jpg        0-byte file (corrupt)
  folder/dog/large.jpg        smooth RGB JPEG 300x260 (down-scaling path)
  folder/dog/rgba.png         RGBA noise with random alpha, 30x40
  folder/zebra/.gitkeep       empty class folder (git cannot hold an empty dir)
  reference.json              expected tensors computed with torchvision / PIL

reference.json holds, per (image, preset): the output shape, the per-channel
mean over the whole output, and either all values ("values", C*H*W row-major,
when at most 1200) or values at 128 sampled (c, y, x) positions ("samples").
Presets:
  torchvision: T.Resize(256) + T.CenterCrop(224) + T.ToTensor() + T.Normalize(
               [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) on img.convert("RGB")
  lucid:       img.convert("RGB").resize((224, 224), BILINEAR) as float, 2*p - 372
  grayscale:   img.convert("L") at native size, (p/255 - 0.2860)/0.3530
"""
import io
import json
import os

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "folder")
rng = np.random.default_rng(2019)


def noise(w, h, c):
    return rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)


def smooth(w, h):
    # low-resolution noise blown up bicubically plus a few hard edges
    small = Image.fromarray(noise(12, 10, 3), "RGB").resize((w, h), Image.BICUBIC)
    a = np.asarray(small).copy()
    a[h // 3 : h // 3 + 7, :, 0] = 255
    a[:, w // 2 : w // 2 + 5, 2] = 0
    return a


def write(path, data=None, img=None, **save):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if img is not None:
        img.save(path, **save)
    else:
        with open(path, "wb") as f:
            f.write(data)


def main():
    files = {}
    files["cat/cat_01.png"] = Image.fromarray(noise(40, 30, 3), "RGB")
    files["cat/cat_02.jpg"] = Image.fromarray(noise(40, 30, 3), "RGB")
    files["cat/grey.png"] = Image.fromarray(noise(40, 30, 1)[:, :, 0], "L")
    files["dog/DOG_03.JPEG"] = Image.fromarray(noise(47, 30, 3), "RGB")
    files["dog/large.jpg"] = Image.fromarray(smooth(300, 260), "RGB")
    files["dog/rgba.png"] = Image.fromarray(noise(30, 40, 4), "RGBA")
    for rel, img in files.items():
        opts = {}
        if rel.lower().endswith((".jpg", ".jpeg")):
            opts = dict(format="JPEG", quality=95, subsampling=0)
        write(os.path.join(ROOT, rel), img=img, **opts)

    buf = io.BytesIO()
    Image.fromarray(noise(40, 30, 3), "RGB").save(buf, format="JPEG", quality=95)
    full = buf.getvalue()
    write(os.path.join(ROOT, "cat/truncated.jpg"), data=full[: len(full) // 2])
    write(os.path.join(ROOT, "cat/notes.txt"), data=b"not an image\n")
    write(os.path.join(ROOT, "dog/empty.jpg"), data=b"")
    write(os.path.join(ROOT, "zebra/.gitkeep"), data=b"")

    tv = T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    refs = []
    for rel in files:
        # read back from disk so that JPEG coding is part of the reference
        img = Image.open(os.path.join(ROOT, rel))
        img.load()
        outs = {
            "torchvision": tv(img.convert("RGB")).numpy(),
            "lucid": np.asarray(
                img.convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32
            ).transpose(2, 0, 1)
            * 2.0
            - 372.0,
            "grayscale": (
                (np.asarray(img.convert("L"), dtype=np.float32) / 255.0 - 0.2860) / 0.3530
            )[None],
        }
        for preset, out in outs.items():
            out = out.astype(np.float32)
            c, h, w = out.shape
            entry = {
                "file": rel,
                "preset": preset,
                "shape": [c, h, w],
                "channel_means": [float("%.9g" % out[i].mean(dtype=np.float64)) for i in range(c)],
            }
            if out.size <= 1200:
                entry["values"] = [float("%.6g" % v) for v in out.reshape(-1)]
            else:
                idx = np.stack(
                    [rng.integers(0, c, 128), rng.integers(0, h, 128), rng.integers(0, w, 128)], 1
                )
                entry["samples"] = [
                    [int(i), int(y), int(x), float("%.6g" % out[i, y, x])] for i, y, x in idx
                ]
            refs.append(entry)
    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump({"generator": "make_folder.py", "torch": torch.__version__, "refs": refs}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
