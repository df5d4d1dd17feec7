"Training images/s of an ftl run (its DataLoaders, Learner, callbacks) vs a bare PyTorch loop on in-memory tensors"
import sys, time, warnings
warnings.filterwarnings('ignore')
import numpy as np, torch
from fastai.vision.all import EarlyStoppingCallback, SaveModelCallback, ImageBlock, CategoryBlock, DataBlock, Normalize, PILImage
from ftl.train import Config, build_learner, History
from ftl.data import StratifiedSubsetSplitter
from ftl.models import norm_stats

def bare_epoch(model, x, y, bs, lr):
    "Seconds for one epoch of a bare loop: same model, batch size, Adam, one-cycle, data already tensors"
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=len(x)//bs)
    model.train(); perm = torch.randperm(len(x))
    t0 = time.perf_counter()
    for i in range(len(x)//bs):
        idx = perm[i*bs:(i+1)*bs]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    return time.perf_counter() - t0

def pil_pipeline_data_s(src, cfg):
    "Data cost of the conventional fastai pipeline (PIL item per image, ImageBlock), the 'before' of ftl's uint8 arrays"
    items = list(range(len(src.labels)))
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=lambda i: PILImage.create(src.images[i]),
                       get_y=lambda i: src.classes[src.labels[i]], splitter=StratifiedSubsetSplitter(src, 1.0, 0),
                       batch_tfms=Normalize.from_stats(*norm_stats(cfg.arch)))
    dls = dblock.dataloaders(items, bs=cfg.bs, num_workers=0)
    t0 = time.perf_counter()
    for _ in dls.train: pass
    return time.perf_counter() - t0

if __name__ == '__main__':
    cfg = Config(arch=sys.argv[1] if len(sys.argv) > 1 else 'efficientnet_lite0')  # the quick preset's size and batch
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    learn, src = build_learner(cfg); learn.unfreeze()
    import tempfile, pathlib
    learn.path = pathlib.Path(tempfile.mkdtemp())
    xs, ys = zip(*[(xb.clone(), yb.clone()) for xb, yb in learn.dls.train.new(shuffle=False, drop_last=False)])
    x, y = torch.cat(xs).as_subclass(torch.Tensor), torch.cat(ys).as_subclass(torch.Tensor)  # same preprocessing, as tensors
    t = {}
    class Timer(History):
        def before_train(self): self.t0 = time.perf_counter()
        def after_train(self): t.setdefault('train', []).append(time.perf_counter() - self.t0)
        def before_validate(self): self.v0 = time.perf_counter()
        def after_validate(self): t.setdefault('valid', []).append(time.perf_counter() - self.v0)
    bare = []
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, cfg.lr)  # warm-up
        for _ in range(reps):  # interleaved, so that the machine's drift hits both alike
            learn.fit_one_cycle(1, cfg.lr, cbs=[Timer(), EarlyStoppingCallback(patience=9), SaveModelCallback(fname='b')])
            bare.append(bare_epoch(learn.model, x, y, cfg.bs, cfg.lr))
    d0 = time.perf_counter()
    for _ in learn.dls.train: pass
    data_s = time.perf_counter() - d0
    n = len(learn.dls.train_ds)//cfg.bs*cfg.bs
    ftl_s, bare_s = float(np.median(t['train'])), float(np.median(bare))
    print(f"{cfg.arch} @ {cfg.size}px, bs {cfg.bs}, {torch.get_num_threads()} threads, {n} training images/epoch, {reps} interleaved epochs each")
    print(f"ftl epoch (median): train {ftl_s:.1f}s, of which data loading {data_s:.2f}s and forward/backward/step the rest; "
          f"validation {np.median(t['valid']):.1f}s")
    print(f"conventional PIL-item fastai pipeline, data loading alone: {pil_pipeline_data_s(src, cfg):.2f}s per epoch")
    print(f"bare loop epoch (median): {bare_s:.1f}s   all: ftl {np.round(t['train'], 1).tolist()} bare {np.round(bare, 1).tolist()}")
    print(f"ftl {n/ftl_s:.1f} img/s, bare {n/bare_s:.1f} img/s")
    print(f"overhead_ratio={bare_s/ftl_s:.3f}")
