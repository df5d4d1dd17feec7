"Seconds per training epoch (full fine-tuning) vs number of training images and image size"
import sys, time, warnings
warnings.filterwarnings('ignore')
import pandas as pd, torch
from ftl.train import Config, build_learner

def epoch_seconds(cfg):
    learn, src = build_learner(cfg)
    learn.unfreeze()
    with learn.no_bar(), learn.no_logging():
        t0 = time.perf_counter(); learn.fit(1, cfg.lr); s = time.perf_counter() - t0
    return dict(size=cfg.size, fraction=cfg.fraction, n_train=len(learn.dls.train_ds), epoch_s=round(s, 2),
                img_s=round(len(learn.dls.train_ds)/s, 1))

if __name__ == '__main__':
    arch = sys.argv[1] if len(sys.argv) > 1 else 'efficientnet_lite0'
    rows = [epoch_seconds(Config(arch=arch, size=s, fraction=f)) for s in (56, 84) for f in (0.25, 0.5, 1.0)]
    df = pd.DataFrame(rows)
    print(f'{arch}, one epoch of full fine-tuning incl. validation (394 images), bs 32')
    print(df.to_string(index=False))
    df.to_csv(f"results/benchmark/scaling_{'cuda' if torch.cuda.is_available() else 'cpu'}.csv", index=False)
