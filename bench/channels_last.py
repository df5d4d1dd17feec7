"Training images/s on this CPU with the model and batches in channels_last vs the default layout (same learner, interleaved)"
import sys, time, warnings
warnings.filterwarnings('ignore')
import numpy as np, torch
from ftl.train import Config, build_learner

def epoch_img_s(learn, n_batches, channels_last=False, bf16=False):
    "Images per second of `n_batches` training steps (forward, backward, optimizer) in one memory layout and precision"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    learn.model.to(memory_format=fmt); learn.model.train()
    opt = torch.optim.Adam(learn.model.parameters(), 1e-4)
    batches = [(x.as_subclass(torch.Tensor).contiguous(memory_format=fmt), y) for (x, y), _ in zip(learn.dls.train, range(n_batches))]
    t0 = time.perf_counter()
    for x, y in batches:
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):  # what ftl.train.CPUBFloat16 does in training
            loss = torch.nn.functional.cross_entropy(learn.model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    return len(batches)*batches[0][0].shape[0]/(time.perf_counter() - t0)

if __name__ == '__main__':
    arch, size = (sys.argv[1] if len(sys.argv) > 1 else 'mobilenetv2'), int(sys.argv[2]) if len(sys.argv) > 2 else 160
    learn, _ = build_learner(Config(arch=arch, size=size, strategy='full-finetune'))
    learn.unfreeze()
    epoch_img_s(learn, 2, False); epoch_img_s(learn, 2, True)  # warm-up both layouts
    res = {False: [], True: []}
    for _ in range(3):  # interleaved, so that the machine's drift hits both alike
        for cl in (False, True): res[cl].append(epoch_img_s(learn, 6, cl))
    a, b = np.median(res[False]), np.median(res[True])
    print(f"{arch} @ {size}px, bs 32, {torch.get_num_threads()} threads: default {a:.1f} img/s {np.round(res[False], 1).tolist()}, "
          f"channels_last {b:.1f} img/s {np.round(res[True], 1).tolist()}")
    print(f"speedup={b/a:.2f}")
