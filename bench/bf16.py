"""Training images/s on this CPU in fp32 vs bfloat16 autocast (same learner, interleaved), per architecture at the study's
sizes; and what bf16 did to accuracy: the study's bf16 records beside the fp32 records of the same cells"""
import sys, warnings
warnings.filterwarnings('ignore')
import numpy as np, pandas as pd, torch
from channels_last import epoch_img_s
from ftl.train import Config, build_learner, cpu_bf16_flags
from ftl.records import read_records, records_frame
from ftl.tables import precision_pairs

def speed(arch, size, n_batches=6, repeats=3):
    "Median images/s of training steps in fp32 and in bf16 autocast, interleaved so that the machine's drift hits both alike"
    learn, _ = build_learner(Config(arch=arch, size=size, strategy='full-finetune'))
    learn.unfreeze()
    epoch_img_s(learn, 2), epoch_img_s(learn, 2, bf16=True)  # warm-up
    res = {False: [], True: []}
    for _ in range(repeats):
        for bf in res: res[bf].append(epoch_img_s(learn, n_batches, bf16=bf))
    return dict(arch=arch, size=size, fp32=np.median(res[False]), bf16=np.median(res[True]),
                speedup=np.median(res[True])/np.median(res[False]))

def accuracy_pairs(results='results/architectures'):
    "Validation and test macro-F1 and minutes of the same cells and seeds trained in fp32 and in bf16 (`tables.precision_pairs`)"
    pairs = precision_pairs(records_frame([r for r in read_records(results) if not r.reused_from]))
    pairs['train_seconds'] = pairs['train_seconds']/60
    return pairs.droplevel('twin').rename(columns={'train_seconds': 'minutes'})

if __name__ == '__main__':
    print(f"CPU bf16 instructions: {cpu_bf16_flags()}", flush=True)
    cells = [('mobilenetv2', 128), ('efficientnet_lite0', 128), ('vit_small_dinov2', 126), ('vit_small_dinov2', 224)]
    for arch, size in ([(sys.argv[1], int(sys.argv[2]))] if len(sys.argv) > 2 else cells):
        s = speed(arch, size)
        print(f"{arch} @ {size}px, bs 32, {torch.get_num_threads()} threads: fp32 {s['fp32']:.1f} img/s, bf16 {s['bf16']:.1f} img/s, "
              f"speedup={s['speedup']:.2f}", flush=True)
    pairs = accuracy_pairs()
    if len(pairs): print(pairs.round(3).to_string()); print(pairs.groupby(level=['arch', 'size', 'epochs']).agg(['mean', 'std']).round(3).T.to_string())
