"""The from-scratch arm's learning rate, checked on its own model before its runs: fastai's `lr_find` on the data-efficiency
scratch config at 100 % (random init, its augmentation, its batch size), on training loss only. Prints the suggestions beside
the lr the grid uses (data_efficiency.scratch_lr) and saves the curve.   python bench/scratch_lr.py [arch]  ->  results/benchmark/scratch-lr.{txt,png}"""
import sys, warnings
warnings.filterwarnings('ignore')
import matplotlib; matplotlib.use('Agg')
from fastai.callback.schedule import minimum, steep, valley, slide
import ftl.studies
from ftl.runner import SUITES, Study
from ftl.train import build_learner
from ftl.studies.data_efficiency import scratch_lr

study = Study(preset='study', arch=sys.argv[1] if len(sys.argv) > 1 else None)
cfg = next(c for c in SUITES['data-efficiency'].configs(study) if not c.pretrained and c.fraction == 1 and c.seed == 0)
learn, _ = build_learner(cfg)
learn.unfreeze()
found = learn.lr_find(suggest_funcs=(minimum, steep, valley, slide), show_plot=True)
lines = [f"scratch config: {cfg.key()} (augment {cfg.augment}, bs {learn.dls.bs}, size {cfg.size})",
         f"the grid's scratch lr for {cfg.arch}: {scratch_lr(cfg.arch)}",
         *(f"lr_find {name}: {value:.2e}" for name, value in found._asdict().items())]
print('\n'.join(lines))
open('results/benchmark/scratch-lr.txt', 'w').write('\n'.join(lines) + '\n')
import matplotlib.pyplot as plt; plt.gcf().savefig('results/benchmark/scratch-lr.png', dpi=100, bbox_inches='tight')
