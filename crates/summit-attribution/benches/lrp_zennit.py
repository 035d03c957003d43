"""zennit 0.5.1's time per image for every LRP composite, beside ours (benches/lrp.rs runs this).

The same networks as the bench: torchvision GoogLeNet with the GoogLeNet fixture's weights
(crates/summit-model/tests/fixtures/googlenet/googlenet.pth; batch norm merged by zennit's
SequentialMergeBatchNorm canonizer) and torchvision ResNet-50 with batch-norm statistics randomised as the ONNX fixture's
(make_onnx_models.py's `randomize`; zennit's ResNetCanonizer merges the batch norms and makes
the residual Adds `Sum` modules; the time does not depend on the weights' values); 224², batches of 8, `torch.set_num_threads`
as given (the bench passes its own thread count). Prints one CSV line per model and composite:
`zennit,<model>,<composite>,<images>,<seconds>`.
Run: python3 crates/summit-attribution/benches/lrp_zennit.py [threads] [images]
"""
import os
import sys
import time

import torch
import torchvision
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ATTR_FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")
MODEL_FIXTURES = os.path.join(HERE, "..", "..", "summit-model", "tests", "fixtures")
sys.path.insert(0, ATTR_FIXTURES)
sys.path.insert(0, MODEL_FIXTURES)

from zennit.attribution import Gradient  # noqa: E402
from zennit.canonizers import SequentialMergeBatchNorm  # noqa: E402
from zennit.torchvision import ResNetCanonizer  # noqa: E402


def composites(canonizers):
    import make_zennit as mz
    return mz.composites(canonizers)


def googlenet():
    m = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    sd = torch.load(os.path.join(MODEL_FIXTURES, "googlenet", "googlenet.pth"))
    m.load_state_dict({k: v for k, v in sd.items() if not k.startswith("aux")})
    return m.eval()


def resnet50():
    import make_onnx_models as mo
    return mo.randomize(torchvision.models.resnet50(weights=None), 3).eval()


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    images = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(7)
    for name, make, canon in [("googlenet", googlenet, lambda: [SequentialMergeBatchNorm()]),
                              ("resnet50", resnet50, lambda: [ResNetCanonizer()])]:
        model = make()
        x = torch.rand((images, 3, 224, 224), generator=gen) * 4 - 2
        hot = torch.zeros(images, 1000)
        for i in range(images):
            hot[i, (i * 97) % 1000] = 1.0
        for cname, comp in composites(canon).items():
            with Gradient(model=model, composite=comp()) as attributor:
                attributor(x[:1], hot[:1])  # warm-up
                t = time.perf_counter()
                attributor(x, hot)
                s = time.perf_counter() - t
            print(f"zennit,{name},{cname},{images},{s:.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
