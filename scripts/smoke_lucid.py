#!/usr/bin/env python3
"""Smoke run of `inception_imagenet --model lucid --preset summit2019` end to end.

Uses the random-weight Lucid InceptionV1 of the lucent parity fixture
(crates/summit-model/tests/fixtures/make_lucent.py), a generated image folder of three
synset-named classes (random RGB images of various sizes) and a 1008-line output list in
Lucid's format (a `dummy` first, the classes at shuffled positions, unused entries after),
then checks the output directory: the preset, the three classes in sorted-synset order with
their image counts, Summit's layer names, and that the five summit2019 exclusions appear in
no attribution graph. Run from the repository root (scripts/check.sh does).
"""

import json
import os
import random
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "crates/summit-model/tests/fixtures/lucent/inceptionv1.pth")
SYNSETS = ["n01440764", "n02119789", "n04589890"]
LAYERS = ["mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e",
          "mixed5a", "mixed5b"]


def main():
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        for s in SYNSETS:
            os.makedirs(os.path.join(data, s))
            for k in range(3):
                w, h = rng.randrange(120, 400), rng.randrange(120, 400)
                img = Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))
                img.save(os.path.join(data, s, f"img{k}.jpg" if k % 2 else f"img{k}.png"))
        outputs = ["dummy"] + [f"x{i:08d}" for i in range(1, 1001)] + ["dummy"] * 7
        for s, at in zip(SYNSETS, rng.sample(range(1, 1001), 3)):
            outputs[at] = s
        out_list = os.path.join(tmp, "ImageNet_alternate_synsets.txt")
        with open(out_list, "w") as f:
            f.write("\n".join(outputs) + "\n")
        out = os.path.join(tmp, "out")
        cmd = ["cargo", "run", "--release", "--quiet", "--example", "inception_imagenet", "--",
               "--model", "lucid", "--preset", "summit2019", "--weights", WEIGHTS,
               "--output-classes", out_list, "--data", data, "--out", out, "--batch-size", "4",
               # feature visualization at 224² costs ~0.2 s per image and step on 2 cores:
               # a tiny budget here (4 channels, 2 steps) checks the path, not the images
               "--feature-vis-steps", "2", "--feature-vis-channels", "4",
               "--feature-vis-cache", "off"]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)

        with open(os.path.join(out, "manifest.json")) as f:
            m = json.load(f)
        assert m["preset"] == "summit2019", m["preset"]
        assert m["total_images"] == 9, m["total_images"]
        assert "3 of 1008 outputs" in m["model"], m["model"]
        with open(os.path.join(out, "data", "imagenet.json")) as f:
            index = json.load(f)
        assert [c["synset"] for c in index] == SYNSETS, index
        assert all(c["numOfInstances"] == 3 for c in index)
        excluded = {"mixed3a": {67, 190}, "mixed3b": {390, 399, 412}}
        for c in range(3):
            with open(os.path.join(out, "data", "ag", f"ag-{c}.json")) as f:
                ag = json.load(f)
            assert list(ag) == LAYERS[::-1], list(ag)
            for layer, chans in excluded.items():
                got = {v["channel"] for v in ag[layer]}
                assert not got & chans, (c, layer, got & chans)
        with open(os.path.join(out, "feature-vis.json")) as f:
            fv = json.load(f)
        assert len(fv["channels"]) == 4 and fv["computed"] == 4, fv["channels"].keys()
        for e in fv["channels"].values():
            for rel in [e["image"]] + e["diversity"]:
                assert os.path.isfile(os.path.join(out, rel)), rel
            name = LAYERS[e["layer"]]
            jpg = f"data/feature-vis/channel/{name}-{e['channel']}-channel.jpg"
            assert os.path.isfile(os.path.join(out, jpg)), jpg
        print("lucid summit2019 smoke run: ok")


if __name__ == "__main__":
    if not os.path.exists(WEIGHTS):
        sys.exit(f"{WEIGHTS} missing: run crates/summit-model/tests/fixtures/make_lucent.py")
    main()
