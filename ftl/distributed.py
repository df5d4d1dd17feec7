"""A suite's grid on a Ray cluster: each pending config is a Ray task running the same `run_config` as the sequential
runner; the driver writes each record as its task finishes, so resume, reuse and the tables work unchanged"""
from __future__ import annotations
import json, os, time, traceback
from pathlib import Path
from .records import write_atomic

__all__ = ['ray_executor', 'failure_path']

def failure_path(results, suite, key) -> Path: return Path(results)/suite/'failures'/f'{key}.json'

def _task(cfg, models, threads, cache):
    "One run inside a Ray worker: threads set so workers do not oversubscribe the cores, caches shared with the driver"
    import torch
    if cache: os.environ['FTL_CACHE'] = cache
    torch.set_num_threads(threads)
    from .train import run_config
    return run_config(cfg, models).to_dict()

def _resources(ray, workers):
    "Per-task resources: one GPU each where the cluster has GPUs, else an equal share of its CPU cores"
    res = ray.cluster_resources()
    if res.get('GPU', 0) >= 1: return dict(num_gpus=1, num_cpus=1), 1
    cpus = max(1, int(res.get('CPU', 1)//max(1, workers or int(res.get('CPU', 1)))))
    return dict(num_cpus=cpus), cpus

def ray_executor(workers: int | None = None, address: str | None = None, max_retries: int = 2, results=None, suite=None):
    "An executor for `run_suite`: `workers` local Ray workers, or the cluster at `address` ('auto' or host:port)"
    def execute(configs, models, done):
        if not configs: return
        import ray
        from fastprogress.fastprogress import progress_bar
        from .train import prepare
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False, log_to_driver=False,
                     **({} if address else dict(object_store_memory=200*2**20)))
        for key in {(c.dataset, c.size, c.arch, c.pretrained): c for c in configs}.values(): prepare(key)  # decode and convert once
        res, threads = _resources(ray, workers)
        task = ray.remote(max_retries=max_retries, **res)(_task)
        cache = os.environ.get('FTL_CACHE')
        refs = {task.remote(c, None if models is None else str(models), threads, cache): c for c in configs}
        start, n, failed = time.time(), len(refs), []
        bar = progress_bar(range(n), leave=False); bar.update(0)
        while refs:
            (ref,), _ = ray.wait(list(refs), num_returns=1)
            cfg = refs.pop(ref)
            try:
                from .records import Record
                done(cfg, Record.from_dict(ray.get(ref)))
                if results and (f := failure_path(results, suite, cfg.key())).exists(): f.unlink()
            except Exception as e:
                failed.append(cfg)
                print(f"failed {cfg.key()}: {type(e).__name__}: {e}", flush=True)
                if results:
                    entry = dict(key=cfg.key(), config=cfg.__dict__, error=f'{type(e).__name__}: {e}', traceback=traceback.format_exc(),
                                 time=time.strftime('%Y-%m-%dT%H:%M:%S'))
                    write_atomic(failure_path(results, suite, cfg.key()), lambda t: t.write_text(json.dumps(entry, indent=1)))
            k = n - len(refs)
            bar.update(k); bar.comment = f'{k}/{n} runs, {(time.time() - start)/k*(n - k)/60:.1f} min left'
            print(f"[{k}/{n}] {(time.time() - start)/60:.1f} min, about {(time.time() - start)/k*(n - k)/60:.1f} min left", flush=True)
        if failed: print(f"{len(failed)} of {n} runs failed (errors under {results}/{suite}/failures/); rerun the suite to retry them")
    return execute
