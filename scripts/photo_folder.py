#!/usr/bin/env python3
"""Writes an ImageNet-style image folder of crops of the photos matplotlib ships.

usage: python3 scripts/photo_folder.py OUT_DIR [IMAGES_PER_CLASS]

Also writes OUT_DIR.classes.txt, a 1000-line class list in LOC_synset_mapping.txt's format for
`--class-list` (the three synsets at their sorted positions among placeholders; with the
fixture's random GoogLeNet weights any output order is as good as another).

Three classes, one per sample photo (grace_hopper.jpg, Minduka_Present_Blue_Pack.png,
logo2.png), named by ImageNet synsets so that the torchvision GoogLeNet example takes them
(n03763968 military uniform, n03000134 chainlink fence, n06359193 web site); each image is a
seeded random crop (40–100 % of the shorter side) scaled to 256², with a random horizontal flip.
Real photos without a download: docs/faithfulness.md runs GoogLeNet's graphs over them.
"""
import os
import random
import sys

import matplotlib
from PIL import Image

PHOTOS = [("n03763968", "grace_hopper.jpg"), ("n03000134", "Minduka_Present_Blue_Pack.png"),
          ("n06359193", "logo2.png")]


def main():
    out = sys.argv[1]
    per = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    src = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data")
    rng = random.Random(11)
    for synset, name in PHOTOS:
        img = Image.open(os.path.join(src, name)).convert("RGB")
        w, h = img.size
        os.makedirs(os.path.join(out, synset), exist_ok=True)
        for k in range(per):
            side = int(min(w, h) * rng.uniform(0.4, 1.0))
            x, y = rng.randrange(0, w - side + 1), rng.randrange(0, h - side + 1)
            crop = img.crop((x, y, x + side, y + side)).resize((256, 256), Image.BILINEAR)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            crop.save(os.path.join(out, synset, f"{synset}_{k:03d}.jpg"), quality=92)
    synsets = sorted([s for s, _ in PHOTOS] + [f"n9{i:07d}" for i in range(1000 - len(PHOTOS))])
    with open(out.rstrip("/") + ".classes.txt", "w") as f:
        f.write("".join(f"{s} {s}\n" for s in synsets))
    print(f"{out}: {len(PHOTOS)} classes × {per} images; class list {out.rstrip('/')}.classes.txt")


if __name__ == "__main__":
    main()
