"""`make demo`: the whole method, end to end, on generated data, for a machine with no dataset and no GPU.

Everything lands in one folder (``--out``, default ``demo_out/``)::

    1. data/cityscapes/      a seeded synthetic street-scene set in the official Cityscapes layout (leftImg8bit/,
                             gtFine/ *_labelIds.png, *_instanceIds.png, *_polygons.json) with train, val and test
                             splits, written by tools/synthetic_cityscapes.py (scene='simple': sky,
                             building, vegetation, sidewalk, road, cars and persons, varied lighting)
    2. data/cityscapes/annotations/{train,val,test}.json   the real converter (--splits train val test)
       data/cityscapes/splits/d_*_seed{s}.json             tools/make_partial_split.py, scenario (d), one split
                                                           per seed: a few seg labels inside a larger
                                                           det-labeled subset; segmentation is the task with
                                                           fewer labels
    3. seed{s}/init/         per seed, a supervised multi-task run from random weights on that seed's labeled
                             images (configs/demo/supervised.py): the initialisation of the three methods of
                             that seed, standing in for the ImageNet weights the paper starts from (no download
                             is possible here; from random weights the EMA teacher's first pseudo-labels are
                             one class everywhere)
    4. seed{s}/<method>/     tools/train.py from that initialisation (load_from) of configs/demo/{supervised,
                             fixmatch_explicit,densefixmatch_explicit}.py (the real low-data configs, shrunk),
                             validation on val every few iterations, the checkpoint with the best val
                             multitask/gmean kept (the paper's rule); then tools/test.py of that checkpoint on
                             the test split (seed{s}/<method>/test/)
    5. results.md / .json    per method: per-seed test metrics (read from tools/test.py's JSON), mean +- std over
                             the seeds, the val-selected iteration, commands and wall times
       results.png           per-method means with every seed's point
       qualitative.png       ground truth and each method's boxes + segmentation on test images (seed 0)
       pseudo_labels.png     the pseudo-label quality (det.pl/*, seg.pl/*: PseudoLabelQualityHook, measured
                             against the labels the split withheld) of every semi-supervised run over training

Nothing is selected or tuned on the test split. Runs go two at a time (``--jobs``), each with one thread.
``--quick`` is a smoke test of the whole path (a few images and iterations, one seed; its numbers mean nothing).

Each tools/train.py / tools/test.py runs in a child ``python tools/demo.py --tool tools/<x>.py ARGS``: the tool's
own ``main`` (runpy), with mmengine's ``Config.pretty_text`` memoised per config content -- the Runner formats
the same config with yapf five times at start-up (~20 s of CPU per process here); the text is unchanged.
"""
import argparse
import functools
import glob
import json
import os
import os.path as osp
import platform
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
METHODS = (  # (work-dir name, config, display name)
    ('supervised', 'configs/demo/supervised.py', 'Supervised multi-task'),
    ('fixmatch_explicit', 'configs/demo/fixmatch_explicit.py', 'FixMatch* (explicit)'),
    ('densefixmatch_explicit', 'configs/demo/densefixmatch_explicit.py', 'Dense FixMatch (explicit)'),
)
SEMI = ('fixmatch_explicit', 'densefixmatch_explicit')
KEYS = ('det/bbox_mAP', 'seg/mIoU', 'multitask/gmean')
HEIGHT, WIDTH = 128, 256
# scenario (d) of section 4.1: n_seg seg labels inside the n_det det-labeled train images (one split per seed)
# init_iters: each seed's supervised initialisation; iters / val_interval: each method's run from it (None: the
# configs' own, 600 / 150)
SIZES = dict(
    full=dict(
        num_train=300,
        num_val=40,
        num_test=100,
        n_det='1/12',
        n_seg='1/25',
        init_iters=1000,
        iters=None,
        val_interval=None,
        seeds=3),
    quick=dict(
        num_train=16, num_val=4, num_test=4, n_det='1/2', n_seg='1/4', init_iters=4, iters=4, val_interval=2, seeds=1))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='demo_out', help='output folder (default: demo_out)')
    parser.add_argument(
        '--device',
        choices=('cpu', 'cuda'),
        default=None,
        help='training device (default: cuda when available, else cpu)')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='smoke test of the whole path: a few images and iterations, 1 seed (numbers mean '
        'nothing)')
    parser.add_argument(
        '--seeds',
        type=int,
        default=None,
        help='seeds per method: splits and training seeds 0..N-1 (default 3; --quick: 1)')
    parser.add_argument('--data-seed', type=int, default=0, help='seed of the generated images (default 0)')
    parser.add_argument('--jobs', type=int, default=2, help='training processes at once (default 2)')
    parser.add_argument(
        '--iters', type=int, default=None, help='training iterations of every method (default: the demo configs\' 600)')
    parser.add_argument(
        '--init-iters',
        type=int,
        default=None,
        help='iterations of each seed\'s supervised initialisation (default: 1000)')
    parser.add_argument(
        '--study',
        choices=('label-count', ),
        default=None,
        help='label-count: the demo setting at each of --seg-counts seg labels (det labels fixed), '
        'every method and seed; OUT/study.{md,json,png} (docs/label_count_study.md)')
    parser.add_argument(
        '--seg-counts',
        nargs='+',
        default=None,
        help='seg-labeled train images of the label-count study, at most the 25 det-labeled ones '
        '(scenario d: seg within det; default 3 6 12 25, 12 being make demo\'s; --quick 1 2)')
    return parser.parse_args(argv)


def banner(text: str) -> None:
    print(f'\n=== {text}', flush=True)


_print_lock = threading.Lock()


def say(text: str) -> None:
    with _print_lock:
        print(text, flush=True)


# ------------------------------------------------------------------------------------------ 1-2. data
def make_data(root: str,
              sizes: dict,
              data_seed: int,
              seeds: List[int],
              nproc: int,
              n_segs: Optional[List[str]] = None) -> Dict[tuple, str]:
    """Generate the data set, convert it with the real converter, write one split per seed and seg count (default:
    ``sizes['n_seg']``). Returns ``(n_seg, seed)`` -> split path relative to ``root``. For a seed, the det-labeled
    images are the same whatever the seg count, and the seg-labeled ones of a smaller count are among those of a
    larger one (make_partial_split draws both from one permutation)."""
    from synthetic_cityscapes import write_synthetic_cityscapes  # tools/, on sys.path

    for sub in ('leftImg8bit', 'gtFine', 'annotations', 'splits'):
        shutil.rmtree(osp.join(root, sub), ignore_errors=True)
    banner(f'1/5 generating {sizes["num_train"]} train + {sizes["num_val"]} val + {sizes["num_test"]} test street '
           f'scenes ({WIDTH}x{HEIGHT}, seed {data_seed}) in the Cityscapes layout -> {root}')

    def progress(done, total):
        if done == total or done % 100 == 0:
            print(f'  {done}/{total} images', flush=True)

    summary = write_synthetic_cityscapes(
        root,
        sizes['num_train'],
        sizes['num_val'],
        HEIGHT,
        WIDTH,
        seed=data_seed,
        nproc=nproc,
        progress=progress,
        num_test=sizes['num_test'],
        scene='simple')
    for split in ('train', 'val', 'test'):
        s = summary[split]
        print(f'  {split}: {s["images"]} images, {s["instances"]} instances')

    banner('2/5 the Cityscapes converter (train, val, test) and a scenario (d) split per seed')
    run_tool([
        sys.executable, 'tools/dataset_converters/cityscapes.py', root, '--nproc',
        str(nproc), '--splits', 'train', 'val', 'test'
    ])
    splits = {}
    for n_seg in n_segs or [sizes['n_seg']]:
        for seed in seeds:
            split = f'splits/d_{sizes["n_det"].replace("/", "of")}_{n_seg.replace("/", "of")}_seed{seed}.json'
            run_tool([
                sys.executable, 'tools/make_partial_split.py',
                osp.join(root, 'annotations', 'train.json'), '--scenario', 'd', '--n-det', sizes['n_det'], '--n-seg',
                n_seg, '--seed',
                str(seed), '-o',
                osp.join(root, split)
            ])
            splits[(n_seg, seed)] = split
    return splits


def run_tool(cmd: List[str]) -> None:
    print('$ ' + ' '.join(rel(c) for c in cmd), flush=True)
    proc = subprocess.run(cmd, cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip() and not ln.lstrip().startswith('[')]
    print('\n'.join('  ' + ln for ln in lines), flush=True)
    if proc.returncode:
        raise SystemExit(f'{cmd[1]} failed with exit code {proc.returncode}')


def rel(path: str) -> str:
    return osp.relpath(path, REPO) if osp.isabs(path) and path.startswith(REPO + os.sep) else path


def child_env(device: Optional[str] = None) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    env['OMP_NUM_THREADS'] = '1'  # two processes on two cores: one thread each
    if device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    return env


# ---------------------------------------------------------------------------------------- 3-4. training
def run_child(tool: str, args: List[str], log_path: str, device: str) -> float:
    """Run ``tool`` (tools/train.py or tools/test.py) with ``args`` in a child process, its output in
    ``log_path``. Returns the wall time in seconds; a failure raises with the log's tail."""
    cmd = [sys.executable, osp.join(REPO, 'tools', 'demo.py'), '--tool', tool, *args]
    start = time.time()
    with open(log_path, 'w') as log:
        rc = subprocess.run(cmd, cwd=REPO, env=child_env(device), stdout=log, stderr=subprocess.STDOUT).returncode
    if rc:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-40:])
        raise RuntimeError(f'{tool} failed with exit code {rc}; full log: {log_path}\n{tail}')
    return time.time() - start


def command_line(tool: str, args: List[str]) -> str:
    return ' '.join(['python', tool] + [rel(a) for a in args])


def latest_run_dir(work_dir: str) -> str:
    """The ``<work_dir>/<timestamp>/`` folder of the Runner's latest run."""
    dirs = sorted(d for d in glob.glob(osp.join(work_dir, '2*')) if osp.isdir(d))
    if not dirs:
        raise FileNotFoundError(f'no <timestamp>/ run folder under {work_dir}')
    return dirs[-1]


def read_scalars(work_dir: str) -> List[dict]:
    """The records of ``<work_dir>/<timestamp>/vis_data/scalars.json`` (one JSON object per line)."""
    path = osp.join(latest_run_dir(work_dir), 'vis_data', 'scalars.json')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist: did the run log anything?')
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_metrics(work_dir: str) -> Dict[str, float]:
    """The metrics tools/test.py wrote to ``<work_dir>/<timestamp>/<timestamp>.json``."""
    run = latest_run_dir(work_dir)
    path = osp.join(run, osp.basename(run) + '.json')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist: tools/test.py wrote no metrics')
    with open(path) as f:
        metrics = json.load(f)
    missing = [k for k in KEYS if k not in metrics]
    if missing:
        raise KeyError(f'{path} lacks {missing}')
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def best_checkpoint(work_dir: str) -> str:
    found = glob.glob(osp.join(work_dir, 'best_multitask_gmean_iter_*.pth'))
    if len(found) != 1:
        raise FileNotFoundError(f'expected one best_multitask_gmean_iter_*.pth in {work_dir}, found {found}')
    return found[0]


def run_init(seed: int, ctx: dict) -> dict:
    """The supervised initialisation of ``seed``: configs/demo/supervised.py from random weights."""
    work_dir = osp.join(ctx['out'], f'seed{seed}', 'init')
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    n = ctx['sizes']['init_iters']
    args = [
        METHODS[0][1], '--work-dir', work_dir, '--cfg-options', *ctx['options'][seed], f'train_cfg.max_iters={n}',
        f'train_cfg.val_interval={n}', f'param_scheduler.0.end={n}', f'default_hooks.checkpoint.interval={n}',
        'default_hooks.checkpoint.save_best=None', f'default_hooks.logger.interval={max(1, min(25, n // 10))}'
    ]
    say(f'  [seed {seed}] init: {n} supervised iterations from random weights ...')
    wall = run_child('tools/train.py', args, osp.join(work_dir, 'train_stdout.log'), ctx['device'])
    val = [r for r in read_scalars(work_dir) if 'multitask/gmean' in r][-1]
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    say(f'  [seed {seed}] init done in {wall:.0f} s: val ' + fmt(val))
    return dict(
        checkpoint=checkpoint,
        iterations=n,
        wall_time_s=round(wall, 1),
        val={k: val[k]
             for k in KEYS},
        command=command_line('tools/train.py', args))


def run_method(seed: int, key: str, config: str, init, ctx: dict) -> dict:
    """``config`` from the seed's initialisation, validated on val; the best val checkpoint tested on test."""
    init = init.result()  # the seed's initialisation (a future), submitted earlier
    work_dir = osp.join(ctx['out'], f'seed{seed}', key)
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    sizes = ctx['sizes']
    args = [config, '--work-dir', work_dir, '--cfg-options', *ctx['options'][seed], f'load_from={init["checkpoint"]}']
    if sizes['iters']:
        n, v = sizes['iters'], sizes['val_interval'] or sizes['iters']
        args += [
            f'train_cfg.max_iters={n}', f'train_cfg.val_interval={v}', f'param_scheduler.0.end={n}',
            f'default_hooks.checkpoint.interval={v}', f'default_hooks.logger.interval={max(1, min(25, n // 10))}'
        ]
        if key in SEMI:  # pseudo-label quality twice per validation, the pictures at the end
            args += [
                hook_option(config, 'PseudoLabelQualityHook', 'interval', max(1, v // 2)),
                hook_option(config, 'PseudoLabelVisHook', 'interval', n)
            ]
    say(f'  [seed {seed}] {key}: training ...')
    wall = run_child('tools/train.py', args, osp.join(work_dir, 'train_stdout.log'), ctx['device'])
    scalars = read_scalars(work_dir)
    vals = [r for r in scalars if 'multitask/gmean' in r]
    best = best_checkpoint(work_dir)
    best_iter = int(best.rsplit('_', 1)[1].split('.')[0])
    test_dir = osp.join(work_dir, 'test')
    targs = [config, best, '--work-dir', test_dir, '--cfg-options', *ctx['test_options']]
    test_wall = run_child('tools/test.py', targs, osp.join(work_dir, 'test_stdout.log'), ctx['device'])
    metrics = test_metrics(test_dir)
    say(f'  [seed {seed}] {key} done in {wall + test_wall:.0f} s; best val at iteration {best_iter}; test ' +
        fmt(metrics))
    return dict(
        seed=seed,
        test={k: metrics[k]
              for k in KEYS},
        test_all=metrics,
        best_iter=best_iter,
        val_curve=[dict(step=r['step'], **{k: r[k]
                                           for k in KEYS}) for r in vals],
        wall_time_s=round(wall, 1),
        test_wall_time_s=round(test_wall, 1),
        checkpoint=osp.relpath(best, ctx['out']),
        work_dir=osp.relpath(work_dir, ctx['out']),
        scalars=osp.relpath(osp.join(latest_run_dir(work_dir), 'vis_data', 'scalars.json'), ctx['out']),
        command=command_line('tools/train.py', args),
        test_command=command_line('tools/test.py', targs))


def hook_option(config: str, hook_type: str, key: str, value) -> str:
    """The ``--cfg-options`` item setting ``key`` of ``config``'s custom hook of type ``hook_type``:
    ``custom_hooks.<i>.<key>=<value>``, the position ``i`` (which ``--cfg-options`` needs for a list) looked up by
    type in the config.

    Raises:
        KeyError: ``config`` has no hook of that type (the message names the config and the type).
    """
    return f'custom_hooks.{hook_index(config, hook_type)}.{key}={value}'


@functools.lru_cache(maxsize=None)
def hook_index(config: str, hook_type: str) -> int:
    """The position of the custom hook of type ``hook_type`` in ``config`` (a path relative to the repository)."""
    from mmengine.config import Config

    from mtssl_mm.utils.launch import index_of_type
    hooks = Config.fromfile(osp.join(REPO, config), import_custom_modules=False).get('custom_hooks', [])
    return index_of_type(hooks, hook_type, config, 'custom_hooks')


def fmt(metrics: dict) -> str:
    return ', '.join(f'{k} {float(metrics.get(k, float("nan"))):.4f}' for k in KEYS)


def train_all(ctx: dict, seeds: List[int], jobs: int):
    """Every seed's initialisation, then the three methods of each seed, ``jobs`` processes at once. Jobs are
    submitted longest first after the initialisations, and a job only waits on jobs submitted before it, so a
    pool of ``jobs`` workers cannot deadlock."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        inits = {s: pool.submit(run_init, s, ctx) for s in seeds}
        order = [m for m in METHODS if m[0] in SEMI][::-1] + [m for m in METHODS if m[0] not in SEMI]
        futures = {
            (s, key): pool.submit(run_method, s, key, config, inits[s], ctx)
            for key, config, _ in order
            for s in seeds
        }
        inits = {s: f.result() for s, f in inits.items()}
        runs = {key: [futures[(s, key)].result() for s in seeds] for key, _, _ in METHODS}
    return inits, runs


# ------------------------------------------------------------------------------------------------ main
def machine(device: str) -> str:
    import torch
    if device == 'cuda':
        return f'{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores'
    return f'{os.cpu_count()} CPU cores, no GPU ({platform.processor() or platform.machine()})'


def main(argv=None) -> Dict:
    start = time.time()
    args = parse_args(argv)
    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device is available')
    sizes = dict(SIZES['quick' if args.quick else 'full'])
    for key in ('iters', 'init_iters', 'seeds'):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    if sizes['seeds'] < 1 or args.jobs < 1:
        raise SystemExit('--seeds and --jobs must be >= 1')
    seeds = list(range(sizes['seeds']))
    out = osp.abspath(args.out)
    if ',' in out:
        raise SystemExit(f'--out {out}: a comma would split the --cfg-options value; choose another folder')
    os.makedirs(out, exist_ok=True)
    data_root = osp.join(out, 'data', 'cityscapes')
    nproc = max(1, min(2, os.cpu_count() or 1))

    if args.study == 'label-count':
        return label_count_study(args, sizes, seeds, device, out, data_root, nproc, start, argv)
    splits = make_data(data_root, sizes, args.data_seed, seeds, nproc)
    split_meta = {}
    for (_, seed), split in splits.items():
        with open(osp.join(data_root, split)) as f:
            split_meta[seed] = json.load(f)['meta']
    ctx = setting(out, data_root, {s: splits[(sizes['n_seg'], s)] for s in seeds}, sizes, device)
    banner(f'3-4/5 {len(seeds)} seed(s): a supervised initialisation of {sizes["init_iters"]} iterations per seed, '
           f'then {", ".join(m[2] for m in METHODS)} from it, validated on val, the best val checkpoint tested '
           f'on test ({args.jobs} processes at once on {device}; logs in {args.out}/seed*/*/)')
    inits, runs = train_all(ctx, seeds, args.jobs)

    banner('5/5 results, qualitative predictions (test images, seed 0) and pseudo-label quality curves')
    from demo_report import paired, plot_results, pseudo_label_curves, qualitative, summarise, write_results
    configs = {key: config for key, config, _ in METHODS}
    names = {key: name for key, _, name in METHODS}
    curves = pseudo_label_curves(out, {k: runs[k] for k in SEMI}, names)
    qualitative(
        out, {names[k]: dict(config=configs[k], checkpoint=osp.join(out, runs[k][0]['checkpoint']))
              for k in configs}, ctx['test_options'])
    n1 = sizes['iters'] or 600
    results = {
        key: dict(name=names[key], config=configs[key], iterations=n1, **summarise(runs[key]), runs=runs[key])
        for key in configs
    }
    for key, diffs in paired(results).items():
        results[key]['paired'] = diffs
    meta = dict(
        quick=args.quick,
        seeds=seeds,
        device=device,
        machine=machine(device),
        data=(f'{sizes["num_train"]} train / {sizes["num_val"]} val / {sizes["num_test"]} test generated {WIDTH}x'
              f'{HEIGHT} images (scene "simple", data seed {args.data_seed}); scenario (d) per seed: '
              f'{split_meta[0]["n_det"]} det-labeled train images, {split_meta[0]["n_seg"]} of them also '
              f'seg-labeled, {split_meta[0]["num_images"] - split_meta[0]["n_det"]} unlabeled'),
        splits={s: split_meta[s]
                for s in seeds},
        init={s: inits[s]
              for s in seeds},
        init_iterations=sizes['init_iters'],
        iterations=n1,
        command=('python tools/demo.py ' + ' '.join(argv if argv is not None else sys.argv[1:])).strip(),
        total_wall_time_s=round(time.time() - start, 1),
        pseudo_label_curves=curves)
    title = (f'make demo{" --quick (smoke test)" if args.quick else ""}: scenario (d), {split_meta[0]["n_seg"]} seg '
             f'within {split_meta[0]["n_det"]} det labels of {split_meta[0]["num_images"]} train images; '
             f'{sizes["init_iters"]} + {n1} iterations; {len(seeds)} seed(s); test split')
    plot_results(out, results, title)
    table = write_results(out, results, meta)
    print('\n' + ('QUICK SMOKE TEST (numbers mean nothing)\n' if args.quick else '') + table)
    print(f'\n{meta["data"]}\nmachine: {meta["machine"]}; total {time.time() - start:.0f} s')
    print('written: ' + ', '.join(
        osp.join(args.out, f)
        for f in ('results.md', 'results.json', 'results.png', 'qualitative.png', 'pseudo_labels.png')))
    return dict(meta=meta, methods=results)


def setting(out: str, data_root: str, splits: Dict[int, str], sizes: dict, device: str) -> dict:
    """The context of one experiment: its output folder, and per seed its split and training seed."""
    common = [f'{k}.dataset.data_root={data_root}' for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    return dict(
        out=out,
        sizes=sizes,
        device=device,
        options={
            s: common + [f'train_dataloader.dataset.split_file={split}', f'randomness.seed={s}']
            for s, split in splits.items()
        },
        test_options=common + ['test_dataloader.dataset.ann_file=annotations/test.json'])


def label_count_study(args, sizes: dict, seeds: List[int], device: str, out: str, data_root: str, nproc: int,
                      start: float, argv) -> Dict:
    """The paper's central claim on the demo setting: the three methods at each seg label count (det labels, the
    data, the schedules, the initialisation protocol and the selection rule of ``make demo``, fixed before any
    test number was seen), every seed. Writes ``OUT/n_seg{k}/seed{s}/<method>/`` and ``OUT/study.{json,md,png}``."""
    from demo_report import paired, summarise, write_study
    counts = [str(int(c)) for c in (args.seg_counts or (['1', '2'] if args.quick else ['3', '6', '12', '25']))]
    splits = make_data(data_root, sizes, args.data_seed, seeds, nproc, n_segs=counts)
    names = {key: name for key, _, name in METHODS}
    settings = {}
    for i, n in enumerate(counts):
        banner(f'3-4/5 label-count study, {n} seg labels ({i + 1}/{len(counts)}): {len(seeds)} seed(s), '
               f'{", ".join(names.values())}')
        ctx = setting(osp.join(out, f'n_seg{n}'), data_root, {s: splits[(n, s)] for s in seeds}, sizes, device)
        _, runs = train_all(ctx, seeds, args.jobs)
        results = {key: dict(name=names[key], **summarise(runs[key]), runs=runs[key]) for key in names}
        for key, diffs in paired(results).items():
            results[key]['paired'] = diffs
        with open(osp.join(data_root, splits[(n, seeds[0])])) as f:
            split = json.load(f)['meta']
        settings[n] = dict(n_seg=split['n_seg'], n_det=split['n_det'], methods=results)
    meta = dict(
        quick=args.quick,
        seeds=seeds,
        device=device,
        machine=machine(device),
        counts=counts,
        data=(f'{sizes["num_train"]} train / {sizes["num_val"]} val / {sizes["num_test"]} test generated '
              f'{WIDTH}x{HEIGHT} images (scene "simple", data seed {args.data_seed}); scenario (d) per seed '
              f'and count: {settings[counts[0]]["n_det"]} det-labeled train images, the seg-labeled ones '
              'among them (nested across counts)'),
        init_iterations=sizes['init_iters'],
        iterations=sizes['iters'] or 600,
        command=('python tools/demo.py ' + ' '.join(argv if argv is not None else sys.argv[1:])).strip(),
        total_wall_time_s=round(time.time() - start, 1))
    table = write_study(out, settings, meta)
    print('\n' + ('QUICK SMOKE TEST (numbers mean nothing)\n' if args.quick else '') + table)
    print(f'\nmachine: {meta["machine"]}; total {time.time() - start:.0f} s; written: ' +
          ', '.join(osp.join(args.out, f) for f in ('study.md', 'study.json', 'study.png')))
    return dict(meta=meta, settings=settings)


def run_tool_in_process(argv: List[str]) -> None:
    """``--tool tools/x.py ARGS``: run that tool's ``__main__`` here with ``Config.pretty_text`` memoised (the
    Runner formats the same config with yapf five times at start-up; the text is the same each time)."""
    import runpy

    from mmengine.config import Config

    plain = Config.pretty_text
    cache = {}

    def pretty_text(self):
        key = repr(self._cfg_dict.to_dict())
        if key not in cache:
            cache[key] = plain.fget(self)
        return cache[key]

    Config.pretty_text = property(pretty_text)
    tool = osp.join(REPO, argv[0])
    sys.argv = [tool] + argv[1:]
    sys.path.insert(0, osp.dirname(tool))
    runpy.run_path(tool, run_name='__main__')


if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == '--tool':
        run_tool_in_process(sys.argv[2:])
    else:
        sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
        main()
