"""The study's data-efficiency runs in the order that lands records soonest: the frozen probe, then fine-tuned (cheapest fraction
first, seed by seed), then scratch; resumable like the suite itself (finished runs skipped, a stopped run resumes).
    nohup python bench/de_queue.py [probe] [fine-tuned] [scratch] > de.log 2>&1 &   (no arm named: all three)
then commit results/data-efficiency/*.json as they land"""
import sys
import matplotlib; matplotlib.use('Agg')
import ftl.studies
from ftl.runner import SUITES, Study, pending_configs, sequential, summary_line
from ftl.records import save_record, record_path
study = Study(preset='study'); suite = SUITES['data-efficiency']; lay = study.layout
cfgs = list({c.key(): c for c in suite.configs(study)}.values())
todo = pending_configs(suite, cfgs, lay.results)
arm = lambda c: 0 if c.strategy == 'feature-extraction' else 1 if c.pretrained else 2
order = {0.25: 0, 0.1: 1, 0.5: 2, 0.05: 3, 1.0: 4}
ARMS = ('probe', 'fine-tuned', 'scratch'); wanted = [ARMS.index(a) for a in sys.argv[1:]] or range(3)
todo = [c for c in todo if arm(c) in wanted]
todo.sort(key=lambda c: (arm(c), c.seed if arm(c) else 0, order[c.fraction]))
for c in todo: print('todo', c.key(), c.epochs, flush=True)
def done(cfg, rec): save_record(rec, record_path(lay.results, suite.name, cfg.key())); summary_line(rec, 'ran')
sequential(todo, None, done)
