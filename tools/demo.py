"""`make demo`: the whole method, end to end, on generated data, for a machine with no dataset and no GPU.

Everything lands in one folder (``--out``, default ``demo_out/``)::

    1. data/cityscapes/      a seeded synthetic street-scene set in the official Cityscapes layout
                             (leftImg8bit/, gtFine/ *_labelIds.png, *_instanceIds.png, *_polygons.json),
                             written by mtssl_mm.datasets.synthetic_cityscapes
    2. data/cityscapes/annotations/{train,val}.json   the real converter, tools/dataset_converters/cityscapes.py
       data/cityscapes/splits/d_*.json                tools/make_partial_split.py, scenario (d): a few seg
                                                      labels inside a larger det-labeled subset
    3. init/                 a supervised multi-task run from random weights on the labeled images (configs/demo/
                             supervised.py): the shared initialisation of every method, standing in for the
                             ImageNet weights the paper starts from (no download is possible here; from random
                             weights the EMA teacher's first pseudo-labels are one class everywhere and FixMatch's
                             segmentation collapses onto it)
    4. <method>/             tools/train.py runs from that initialisation (load_from) of configs/demo/{supervised,
                             fixmatch_explicit,densefixmatch_explicit}.py: the real low-data configs, shrunk
    5. results.md / .json    det/bbox_mAP, seg/mIoU, multitask/gmean (MultiTaskMetric: the final validation of each
                             run on the val set), iterations, wall time, command per method
       results.png           a bar chart of the three methods
       qualitative.png       ground truth and each method's boxes + segmentation for a few val images, drawn by
                             MultiTaskLocalVisualizer

The three methods get the same initialisation, labeled images, iterations, optimiser and seed; the
semi-supervised ones also see the unlabeled images (each batch: the supervised run's 2 labeled samples + 2
others). The reported model is each run's final checkpoint: nothing is selected or tuned on the validation set.
``--quick`` is a smoke test of the whole path (a few images and iterations; its numbers mean nothing).
"""
import argparse
import glob
import json
import os
import os.path as osp
import platform
import re
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
METHODS = (  # (work-dir name, config, display name)
    ('supervised', 'configs/demo/supervised.py', 'Supervised multi-task'),
    ('fixmatch_explicit', 'configs/demo/fixmatch_explicit.py', 'FixMatch* (explicit)'),
    ('densefixmatch_explicit', 'configs/demo/densefixmatch_explicit.py', 'Dense FixMatch (explicit)'),
)
KEYS = ('det/bbox_mAP', 'seg/mIoU', 'multitask/gmean')
HEIGHT, WIDTH = 128, 256  # the demo configs' image scale
# scenario (d) of section 4.1: N_seg labels inside the N_det det-labeled images
# init_iters: the shared supervised initialisation; iters: each method's run from it (None: the configs')
SIZES = dict(full=dict(num_train=240, num_val=40, n_det='1/2', n_seg='1/8', init_iters=800, iters=None),
             quick=dict(num_train=16, num_val=6, n_det='1/2', n_seg='1/4', init_iters=4, iters=4))
NUM_QUALITATIVE = 4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='demo_out', help='output folder (default: demo_out)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default=None,
                        help='training device (default: cuda when available, else cpu)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke test of the whole path: a few images and iterations (numbers mean nothing)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the data, the split and training (default 0)')
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations of every method (default: the demo configs\' schedule)')
    parser.add_argument('--init-iters', type=int, default=None,
                        help='iterations of the shared supervised initialisation (default: 800; --quick: 4)')
    return parser.parse_args(argv)


def banner(text: str) -> None:
    print(f'\n=== {text}', flush=True)


# ------------------------------------------------------------------------------------------ 1-2. data
def make_data(root: str, sizes: dict, seed: int, nproc: int) -> str:
    """Generate the data set, convert it with the real converter, write the split. Returns the split path
    relative to ``root``."""
    from mtssl_mm.datasets.synthetic_cityscapes import write_synthetic_cityscapes

    for sub in ('leftImg8bit', 'gtFine', 'annotations', 'splits'):
        shutil.rmtree(osp.join(root, sub), ignore_errors=True)
    banner(f'1/5 generating {sizes["num_train"]} train + {sizes["num_val"]} val street scenes '
           f'({WIDTH}x{HEIGHT}, seed {seed}) in the Cityscapes layout -> {root}')

    def progress(done, total):
        if done == total or done % 40 == 0:
            print(f'  {done}/{total} images', flush=True)

    summary = write_synthetic_cityscapes(root, sizes['num_train'], sizes['num_val'], HEIGHT, WIDTH, seed=seed,
                                         nproc=nproc, progress=progress)
    for split in ('train', 'val'):
        s = summary[split]
        print(f'  {split}: {s["images"]} images, {s["instances"]} instances, {s["crowd_groups"]} crowd groups')

    banner('2/5 the Cityscapes converter and a scenario (d) split')
    run_tool([sys.executable, 'tools/dataset_converters/cityscapes.py', root, '--nproc', str(nproc)])
    split = f'splits/d_{sizes["n_det"].replace("/", "of")}_{sizes["n_seg"].replace("/", "of")}_seed{seed}.json'
    run_tool([sys.executable, 'tools/make_partial_split.py', osp.join(root, 'annotations', 'train.json'),
              '--scenario', 'd', '--n-det', sizes['n_det'], '--n-seg', sizes['n_seg'], '--seed', str(seed),
              '-o', osp.join(root, split)])
    return split


def run_tool(cmd: List[str]) -> None:
    print('$ ' + ' '.join(osp.relpath(c, REPO) if osp.isabs(c) and c.startswith(REPO) else c for c in cmd),
          flush=True)
    proc = subprocess.run(cmd, cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    progress = re.compile(r'^\s*\[[ >]*\]\s*\d+/\d+')  # mmengine's progress bar
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip() and not progress.match(ln)]
    print('\n'.join('  ' + ln for ln in lines), flush=True)
    if proc.returncode:
        raise SystemExit(f'{cmd[1]} failed with exit code {proc.returncode}')


def child_env(device: Optional[str] = None) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    if device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    return env


# ---------------------------------------------------------------------------------------- 3. training
TRAIN_LINE = re.compile(r'Iter\(train\) \[\s*(\d+)/(\d+)\].*?eta: (\S+).*?time: ([\d.]+).*?\bloss: ([\d.]+)')


def train(name: str, config: str, work_dir: str, cfg_options: List[str], device: str) -> Dict:
    """Run tools/train.py, show its progress, return the final validation metrics and the run's facts."""
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *cfg_options]
    log_path = osp.join(work_dir, 'train_stdout.log')
    start = time.time()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=child_env(device), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            m = TRAIN_LINE.search(line)
            if m:
                it, total, eta, t, loss = m.groups()
                print(f'  [{name}] iter {int(it):4d}/{total}  loss {float(loss):.3f}  {float(t):.2f} s/iter  '
                      f'eta {eta}', flush=True)
            elif 'Iter(val)' in line and 'multitask/gmean' in line:
                print(f'  [{name}] validation: ' + ', '.join(
                    f'{k} {v}' for k, v in re.findall(r'(det/bbox_mAP|seg/mIoU|multitask/gmean): ([\d.]+)', line)),
                      flush=True)
        rc = proc.wait()
    wall = time.time() - start
    if rc:
        with open(log_path) as f:
            tail = f.readlines()[-40:]
        print(''.join(tail), file=sys.stderr)
        raise SystemExit(f'{name}: tools/train.py failed with exit code {rc}; full log: {log_path}')
    metrics = last_val_metrics(work_dir)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    return dict(metrics=metrics, wall_time_s=round(wall, 1), checkpoint=checkpoint,
                command=' '.join(['python'] + [c.replace(REPO + os.sep, '') for c in cmd[1:]]))


def last_val_metrics(work_dir: str) -> Dict[str, float]:
    """The last validation metrics the Runner logged (``<work_dir>/<timestamp>/vis_data/scalars.json``)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no scalars.json under {work_dir}: did the run validate?')
    found = None
    with open(files[-1]) as f:
        for line in f:
            rec = json.loads(line)
            if 'multitask/gmean' in rec:
                found = rec
    if found is None:
        raise KeyError(f'{files[-1]} holds no validation metrics (multitask/gmean)')
    return {k: float(v) for k, v in found.items() if '/' in k}


# --------------------------------------------------------------------------------------- 4. reporting
def machine(device: str) -> str:
    import torch
    if device == 'cuda':
        return f'{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores'
    return f'{os.cpu_count()} CPU cores, no GPU ({platform.processor() or platform.machine()})'


def write_results(out: str, results: Dict, meta: Dict) -> str:
    """results.json, results.md; returns the markdown table."""
    with open(osp.join(out, 'results.json'), 'w') as f:
        json.dump(dict(meta=meta, methods=results), f, indent=2)
    head = ('| method | det/bbox_mAP | seg/mIoU (%) | multitask/gmean | iterations | wall time (s) |\n'
            '|---|---|---|---|---|---|')
    rows = []
    for key, r in results.items():
        iters = r['iterations'] if key == 'init' else f'{meta["init_iterations"]} + {r["iterations"]}'
        rows.append(f'| {r["name"]} | {r["det/bbox_mAP"]:.4f} | {r["seg/mIoU"]:.2f} | {r["multitask/gmean"]:.4f} '
                    f'| {iters} | {r["wall_time_s"]:.0f} |')
    table = '\n'.join([head] + rows)
    note = ('**Quick smoke test**: a few images and iterations; these numbers only show that the path runs.\n\n'
            if meta['quick'] else '')
    lines = [
        '# make demo results', '', note + f'Data: {meta["data"]}.', '',
        f'Command: `{meta["command"]}` on {meta["machine"]}; total {meta["total_wall_time_s"]:.0f} s.', '',
        table, '',
        'Every method starts from the shared initialisation (a supervised run from random weights, standing in for '
        'the ImageNet weights of the paper) and trains the same number of iterations on the same labeled images '
        'with the same seed; the semi-supervised ones also see the unlabeled images. Metrics: MultiTaskMetric on '
        'the generated val set, final checkpoint of each run (nothing selected on the val set); mIoU in %, mAP '
        'and gmean as fractions. Wall time: the whole tools/train.py process (start-up, training, the final '
        'validation, checkpoint).', '',
        'Commands:', ''
    ] + [f'- {r["name"]}: `{r["command"]}`' for r in results.values()]
    with open(osp.join(out, 'results.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return table


def plot_results(out: str, results: Dict, init: Dict, title: str) -> None:
    """results.png: grouped bars of the three methods, the shared initialisation as dashed lines."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    groups = [('det/bbox_mAP', 'det mAP', 1.0), ('seg/mIoU', 'seg mIoU', 0.01), ('multitask/gmean', 'gmean', 1.0)]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    n = len(results)
    width = 0.8 / n
    colors = ('#7f7f7f', '#1f77b4', '#d62728')
    for i, (r, color) in enumerate(zip(results.values(), colors)):
        vals = [r[k] * s for k, _, s in groups]
        xs = np.arange(len(groups)) + (i - (n - 1) / 2) * width
        bars = ax.bar(xs, vals, width, label=r['name'], color=color)
        for bar, v in zip(bars, vals):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f'{v:.3f}', ha='center', va='bottom',
                    fontsize=7)
    for g, (k, _, s) in enumerate(groups):
        ax.hlines(init[k] * s, g - 0.45, g + 0.45, colors='k', linestyles='dashed', linewidth=1,
                  label=init['name'] if g == 0 else None)
    ax.set_xticks(np.arange(len(groups)), [g[1] for g in groups])
    ax.set_ylabel('fraction')
    ax.set_ylim(0, ax.get_ylim()[1] * 1.08)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(osp.join(out, 'results.png'))
    plt.close(fig)


def qualitative(out: str, runs: Dict, cfg_options: List[str], scale: int = 2) -> None:
    """A grid: per row one val image, columns ground truth then each method's prediction (boxes with score >=
    0.3 and the segmentation), drawn by MultiTaskLocalVisualizer on CPU."""
    import cv2
    import numpy as np
    import torch
    from mmdet.registry import DATASETS, MODELS, VISUALIZERS
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    init_default_scope('mmdet')
    options = dict(o.split('=', 1) for o in cfg_options if o.startswith(('val_dataloader', 'test_dataloader')))
    vis = VISUALIZERS.build(dict(type='MultiTaskLocalVisualizer', name=f'demo_qualitative_{os.getpid()}',
                                 alpha=0.45, line_width=1))
    columns, dataset, indices = [], None, None
    for name, run in runs.items():
        cfg = Config.fromfile(osp.join(REPO, run['config']))
        cfg.merge_from_dict(options)
        if dataset is None:
            dataset = DATASETS.build(cfg.test_dataloader.dataset)
            vis.dataset_meta = dataset.metainfo
            indices = np.linspace(0, len(dataset) - 1, min(NUM_QUALITATIVE, len(dataset))).round().astype(int)
            samples = [dataset[int(i)] for i in indices]
            columns.append(('ground truth', [draw(vis, s['data_samples'], s, scale, gt=True) for s in samples]))
        model = MODELS.build(cfg.model)
        load_checkpoint(model, run['checkpoint'], map_location='cpu', logger='silent')
        model.eval()
        panels = []
        with torch.no_grad():
            for s in samples:
                pred = model.test_step(pseudo_collate([s]))[0]
                panels.append(draw(vis, pred, s, scale, gt=False))
        columns.append((run['name'], panels))
    h, w = columns[0][1][0].shape[:2]
    header = 22
    rows = []
    for r in range(len(indices)):
        rows.append(np.concatenate([np.pad(col[1][r], ((0, 2), (0, 2), (0, 0)), constant_values=255)
                                    for col in columns], axis=1))
    grid = np.concatenate(rows, axis=0)
    top = np.full((header, grid.shape[1], 3), 255, np.uint8)
    for c, (title, _) in enumerate(columns):
        cv2.putText(top, title, (c * (w + 2) + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(osp.join(out, 'qualitative.png'), np.concatenate([top, grid], axis=0)[..., ::-1])


def draw(vis, sample, data: dict, scale: int, gt: bool):
    """One panel: the image (upscaled ``scale`` times so that labels stay readable), with the ground truth or the
    prediction of ``sample`` drawn over it. Returns RGB uint8."""
    import cv2
    import mmcv
    import torch
    import torch.nn.functional as F
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData, PixelData

    img = mmcv.imread(data['data_samples'].img_path, channel_order='rgb')
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    out = DetDataSample(metainfo=dict(img_shape=img.shape[:2]))
    src, seg_key = (sample.gt_instances, 'gt_sem_seg') if gt else (sample.pred_instances, 'pred_sem_seg')
    boxes = src.bboxes.tensor if hasattr(src.bboxes, 'tensor') else src.bboxes  # gt: mmdet HorizontalBoxes
    if gt:
        inst = InstanceData(bboxes=boxes * scale, labels=src.labels)
    else:
        keep = src.scores >= 0.3
        inst = InstanceData(bboxes=boxes[keep] * scale, labels=src.labels[keep], scores=src.scores[keep])
    seg = getattr(sample, seg_key).sem_seg[:, :img.shape[0] // scale, :img.shape[1] // scale]
    seg = F.interpolate(seg[None].float(), scale_factor=scale, mode='nearest')[0].to(torch.uint8)
    setattr(out, 'gt_instances' if gt else 'pred_instances', inst)
    setattr(out, seg_key, PixelData(sem_seg=seg))
    vis.add_datasample('panel', img, out, draw_gt=gt, draw_pred=not gt, show=False, pred_score_thr=0.3)
    return vis.get_image()


# ------------------------------------------------------------------------------------------------ main
def schedule_options(n: int) -> List[str]:
    """``--cfg-options`` that set a run's length to ``n`` iterations (validation and checkpoint at the end)."""
    return [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}', f'param_scheduler.0.end={n}',
            f'default_hooks.checkpoint.interval={n}', f'default_hooks.logger.interval={max(1, min(20, n // 10))}']


def main(argv=None) -> Dict:
    start = time.time()
    args = parse_args(argv)
    import torch
    from mmengine.config import Config
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device is available')
    sizes = dict(SIZES['quick' if args.quick else 'full'])
    if args.iters is not None:
        sizes['iters'] = args.iters
    if args.init_iters is not None:
        sizes['init_iters'] = args.init_iters
    out = osp.abspath(args.out)
    if ',' in out:
        raise SystemExit(f'--out {out}: a comma would split the --cfg-options value; choose another folder')
    os.makedirs(out, exist_ok=True)
    data_root = osp.join(out, 'data', 'cityscapes')
    nproc = max(1, min(2, os.cpu_count() or 1))

    split = make_data(data_root, sizes, args.seed, nproc)
    with open(osp.join(data_root, split)) as f:
        split_meta = json.load(f)['meta']

    options = [f'{k}.dataset.data_root={data_root}' for k in ('train_dataloader', 'val_dataloader',
                                                              'test_dataloader')]
    options += [f'train_dataloader.dataset.split_file={split}', f'randomness.seed={args.seed}']

    # the paper starts every method from ImageNet weights, which cannot be downloaded here; a supervised
    # multi-task run on the same labeled images stands in for them (from random weights, the EMA teacher's
    # first pseudo-labels are one class everywhere and FixMatch's segmentation collapses onto it)
    key, config, _ = METHODS[0]
    n0 = sizes['init_iters']
    banner(f'3/5 shared initialisation: {config} from random weights, {n0} iterations on {device} (stands in '
           'for the ImageNet weights of the paper)')
    init = train('init', config, osp.join(out, 'init'), options + schedule_options(n0), device)
    init.update(name=f'shared initialisation ({n0} it. supervised)', config=config, iterations=n0)
    print(f'  done in {init["wall_time_s"]:.0f} s: ' +
          ', '.join(f'{k} {init["metrics"].get(k, float("nan")):.4f}' for k in KEYS), flush=True)

    runs = {}
    for i, (key, config, name) in enumerate(METHODS):
        iters = sizes['iters'] or Config.fromfile(osp.join(REPO, config)).train_cfg.max_iters
        banner(f'4/5 {name} ({i + 1}/{len(METHODS)}): {config}, {iters} iterations from the shared '
               f'initialisation on {device}')
        opts = options + [f'load_from={init["checkpoint"]}'] + (schedule_options(iters) if sizes['iters'] else [])
        run = train(key, config, osp.join(out, key), opts, device)
        run.update(name=name, config=config, iterations=iters)
        runs[key] = run
        print(f'  done in {run["wall_time_s"]:.0f} s: ' +
              ', '.join(f'{k} {run["metrics"].get(k, float("nan")):.4f}' for k in KEYS), flush=True)

    banner('5/5 results and qualitative predictions')
    qualitative(out, runs, options)
    results = {k: dict(name=r['name'], config=r['config'], **{m: r['metrics'][m] for m in KEYS},
                       wall_time_s=r['wall_time_s'], iterations=r['iterations'], command=r['command'],
                       checkpoint=osp.relpath(r['checkpoint'], out)) for k, r in [('init', init)] + list(runs.items())}
    data = (f'{sizes["num_train"]} train / {sizes["num_val"]} val generated {WIDTH}x{HEIGHT} images (seed '
            f'{args.seed}); scenario (d): {split_meta["n_det"]} det-labeled train images, {split_meta["n_seg"]} of '
            f'them also seg-labeled, {split_meta["num_images"] - split_meta["n_det"]} unlabeled')
    command = 'python tools/demo.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    meta = dict(quick=args.quick, seed=args.seed, device=device, machine=machine(device), data=data,
                split=split_meta, init_iterations=n0, command=command.strip(),
                total_wall_time_s=round(time.time() - start, 1))
    n1 = runs['supervised']['iterations']
    title = (f'make demo{" --quick (smoke test)" if args.quick else ""}: scenario (d), {split_meta["n_seg"]} seg '
             f'within {split_meta["n_det"]} det labels of {split_meta["num_images"]} images; '
             f'{n0} + {n1} iterations')
    plot_results(out, {k: v for k, v in results.items() if k != 'init'}, results['init'], title)
    table = write_results(out, results, meta)
    print('\n' + ('QUICK SMOKE TEST (numbers mean nothing)\n' if args.quick else '') + table)
    print(f'\n{data}\nmachine: {meta["machine"]}; total {time.time() - start:.0f} s')
    print('written: ' + ', '.join(osp.join(args.out, f) for f in ('results.md', 'results.json', 'results.png',
                                                                  'qualitative.png')))
    return dict(meta=meta, methods=results)


if __name__ == '__main__':
    main()
