"ftl experiments: `python experiments.py --suite <name>` runs one study of the registry, resumably, and writes its outputs"
import sys
import matplotlib; matplotlib.use('Agg')  # a script that saves figures picks its backend; the library leaves it alone
from typing import Annotated
from fastcore.script import call_parse
from ftl.studies import SUITES, Study, run, plan as print_plan
from ftl.config import PRESETS
from ftl.data import dataset_help, resolved
from ftl.errors import UserError

ALL = [s for s in SUITES if s != 'smoke']  # the whole study in its order, without the smoke run
SUITE_HELP = '; '.join(f'{s.name}: {s.doc}' for s in SUITES.values()) + '; all: every suite but smoke, in order'

@call_parse
def main(suite:Annotated[str, SUITE_HELP, dict(choices=[*SUITES, 'all'])]='smoke',
         dataset:Annotated[str, f'the data: {dataset_help()}']='elpv',
         card:str=None,              # the dataset card (Markdown with YAML front matter) when it is not <folder>/README.md
         arch:str=None,              # architecture (ftl or timm name); default: the suite's choice
         preset:Annotated[str, f'settings for a kind of machine: one of {list(PRESETS)}']='quick',
         online:bool=False,          # architectures suite: the timm-hub set (needs internet) instead of the packaged offline set
         results:str='results',      # folder for records and tables; any other than 'results' also holds its figures, models and report
         size:int=None,              # image size in pixels; default: the preset's
         epochs:int=None,            # total epochs of each run, across its stages; default: the preset's (suites may scale it)
         bs:int=None,                # batch size; default: the preset's (on a large GPU, raise it to fill the device)
         strategy:str=None,          # fine-tuning strategy for every run: feature-extraction, full-finetune, gradual-unfreeze, discriminative-lr, fine-tune
         augment:str=None,           # augmentation for every run: none, fastai, dihedral, flips
         loss:str=None,              # loss for every run: cross-entropy, or ordinal (classes the dataset card orders)
         fraction:float=None,        # share of the training split for every run, in (0, 1]
         seed:int=None,              # one seed for every run instead of the preset's seeds
         lr:float=None,              # peak learning rate
         precision:str=None,         # auto (fp16 where CUDA exists, else fp32), fp32, or bf16 (autocast, on the CPU too); default: the preset's
         skip_bad_images:bool=False,  # folder datasets: list and skip unreadable images instead of stopping
         workers:int=None,           # run the suite's pending runs as Ray tasks on this many local workers
         ray_address:str=None,       # or join a Ray cluster ('auto' or host:port); records are written by this process
         plan:bool=False):           # print each pending run's estimated minutes on this host, per suite and in all; train nothing
    "Run one ftl suite; finished runs are skipped, so an interrupted suite resumes where it stopped"
    given = dict(size=size, epochs=epochs, bs=bs, strategy=strategy, augment=augment, loss=loss, fraction=fraction, seed=seed, lr=lr,
                 precision=precision, skip_bad_images=skip_bad_images or None)
    try:
        study = Study(dataset=dataset, arch=arch, preset=preset, online=online, results=results, card=card,
                      fixed={k: v for k, v in given.items() if v is not None}, workers=workers, address=ray_address)
        names = ALL if suite == 'all' else [suite]
        with resolved():  # the dataset looked up, and a folder's files hashed, once per command
            if plan: return print_plan(names, study)
            for i, name in enumerate(names, 1):
                if len(names) > 1: print(f"== {name} ({i} of {len(names)})", flush=True)
                run(name, study)
    except UserError as e: sys.exit(f"error: {e}")
