"""The report of `make demo` (tools/demo.py): results.json / results.md, the chart, the qualitative grid and the
pseudo-label quality curves, all from the runs' JSON outputs (tools/test.py's ``<timestamp>.json``, the
Runner's ``vis_data/scalars.json``), never from text logs."""
import json
import os
import os.path as osp
from typing import Dict, List

import numpy as np

KEYS = ('det/bbox_mAP', 'seg/mIoU', 'multitask/gmean')
NUM_QUALITATIVE = 4
# the pseudo-label quality scalars PseudoLabelQualityHook writes (title, key); REQUIRED must be in every
# semi-supervised run (the others are not written in an interval without any pseudo box / withheld box)
PL_PANELS = (('seg: pixel accuracy', 'seg.pl/acc'), ('seg: mIoU', 'seg.pl/mIoU'),
             ('seg: strong-view pixels in the weak view', 'seg.pl/in_view'), ('det: precision @ score 0.5 (sigma_det)',
                                                                              'det.pl/precision@0.5'),
             ('det: recall @ score 0.5', 'det.pl/recall@0.5'), ('det: pseudo boxes per image @ 0.5',
                                                                'det.pl/boxes_per_img@0.5'))
PL_REQUIRED = ('seg.pl/acc', 'seg.pl/mIoU', 'det.pl/boxes_per_img@0.5')


def summarise(runs: List[dict]) -> dict:
    """Mean and population std over the seeds of each test metric: ``{key: mean, key + '_std': std}``."""
    out = {}
    for k in KEYS:
        vals = np.array([r['test'][k] for r in runs], float)
        out[k], out[k + '_std'] = float(vals.mean()), float(vals.std())
    return out


def paired(results: Dict, base: str = 'supervised') -> Dict[str, dict]:
    """Per method other than ``base``, the paired differences to it: per seed (the same split, initialisation and
    training seed) ``method - base`` of each test metric, their mean and population std and how many seeds
    improve. Stds over seeds are the wrong yardstick for a gain: every seed has its own label split, which moves
    every method together.

    Returns:
        dict: method -> metric -> ``dict(diffs=[per seed], mean, std, improved, seeds)``.
    """
    ref = {r['seed']: r['test'] for r in results[base]['runs']}
    out = {}
    for key, r in results.items():
        if key == base:
            continue
        out[key] = {}
        for k in KEYS:
            diffs = np.array([run['test'][k] - ref[run['seed']][k] for run in r['runs']], float)
            out[key][k] = dict(
                diffs=diffs.tolist(),
                mean=float(diffs.mean()),
                std=float(diffs.std()),
                improved=int((diffs > 0).sum()),
                seeds=len(diffs))
    return out


def paired_line(name: str, diffs: dict) -> str:
    """One method's paired gains as a markdown table row: mean ± std (seeds improving / seeds) per metric."""
    cells = []
    for k in KEYS:
        d = diffs[k]
        scale, digits = (1, 2) if k == 'seg/mIoU' else (1, 4)
        cells.append(f'{d["mean"] * scale:+.{digits}f} ± {d["std"] * scale:.{digits}f} ({d["improved"]}/{d["seeds"]})')
    return f'| {name} − supervised | ' + ' | '.join(cells) + ' |'


PAIRED_HEAD = ('| paired difference | det mAP | seg mIoU (points) | gmean |\n|---|---|---|---|')


def write_results(out: str, results: Dict, meta: Dict) -> str:
    """results.json, results.md; returns the markdown table."""
    with open(osp.join(out, 'results.json'), 'w') as f:
        json.dump(dict(meta=meta, methods=results), f, indent=2)
    n = len(meta['seeds'])
    head = ('| method | det mAP | seg mIoU (%) | gmean | per seed gmean | best val iteration per seed | '
            'wall time per seed (s) |\n|---|---|---|---|---|---|---|')
    rows = []
    for r in results.values():
        cell = [
            f'{r[k]:.4f} ± {r[k + "_std"]:.4f}' if k != 'seg/mIoU' else f'{r[k]:.2f} ± {r[k + "_std"]:.2f}'
            for k in KEYS
        ]
        rows.append(f'| {r["name"]} | ' + ' | '.join(cell) + ' | ' + ', '.join(f'{x["test"]["multitask/gmean"]:.4f}'
                                                                               for x in r['runs']) + ' | ' +
                    ', '.join(str(x['best_iter'])
                              for x in r['runs']) + ' | ' + ', '.join(f'{x["wall_time_s"] + x["test_wall_time_s"]:.0f}'
                                                                      for x in r['runs']) + ' |')
    table = '\n'.join([head] + rows)
    paired_table = '\n'.join([PAIRED_HEAD] +
                             [paired_line(r['name'], r['paired']) for r in results.values() if 'paired' in r])
    init = meta['init']
    note = ('**Quick smoke test**: a few images and iterations; these numbers only show that the path runs.\n\n'
            if meta['quick'] else '')
    lines = [
        '# make demo results', '', note + f'Data: {meta["data"]}.', '',
        f'Command: `{meta["command"]}` on {meta["machine"]}; total {meta["total_wall_time_s"]:.0f} s.', '',
        f'Test split, mean ± std (population) over {n} seed(s); each seed has its own label split, its own '
        f'supervised initialisation ({meta["init_iterations"]} iterations from random weights) and its own '
        f'training seed; every method then trains {meta["iterations"]} iterations from that initialisation and '
        'the checkpoint with the best val multitask/gmean is tested (nothing selected or tuned on test). mIoU in '
        '%, mAP and gmean as fractions.', '', table, '',
        'Paired differences to the supervised baseline, per seed (same split, initialisation and training seed), '
        'then mean ± population std over the seeds and (seeds that improve / seeds). The baseline gets what the '
        'methods get: the same initialisation, iterations, learning rate, EMA of the weights (decay 0.99, '
        'evaluated) and best-on-val selection.', '', paired_table, '',
        'Initialisations (val): ' + '; '.join(f'seed {s}: ' + ', '.join(f'{k} {v:.4f}'
                                                                        for k, v in init[s]['val'].items())
                                              for s in init), '',
        'Pseudo-label quality (`pseudo_labels.png`, PseudoLabelQualityHook against the labels the split withheld), '
        'first → last measurement, mean over seeds:', '', *[
            f'- {name}: ' + ', '.join(f'{k} {v[0]:.3f} → {v[1]:.3f}' for k, v in curve.items())
            for name, curve in meta['pseudo_label_curves'].items()
        ], '',
        'Wall time per seed: tools/train.py + tools/test.py processes (start-up, training, validations, test); two '
        'run at once, one thread each.', '', 'Commands (seed 0):', '', *[
            f'- {r["name"]}: `{r["runs"][0]["command"]}`; test: `{r["runs"][0]["test_command"]}`'
            for r in results.values()
        ], f'- initialisation: `{init[min(init)]["command"]}`'
    ]
    with open(osp.join(out, 'results.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return table + '\n\n' + paired_table


def write_study(out: str, settings: Dict, meta: Dict) -> str:
    """study.json, study.md and study.png of the label-count study; returns the markdown tables."""
    with open(osp.join(out, 'study.json'), 'w') as f:
        json.dump(dict(meta=meta, settings=settings), f, indent=2)
    head = ('| seg labels | method | det mAP | seg mIoU (%) | gmean |\n|---|---|---|---|---|')
    rows, prows = [], []
    for n, st in settings.items():
        for r in st['methods'].values():
            rows.append(f'| {st["n_seg"]} | {r["name"]} | {r["det/bbox_mAP"]:.4f} ± {r["det/bbox_mAP_std"]:.4f} | '
                        f'{r["seg/mIoU"]:.2f} ± {r["seg/mIoU_std"]:.2f} | '
                        f'{r["multitask/gmean"]:.4f} ± {r["multitask/gmean_std"]:.4f} |')
            if 'paired' in r:
                prows.append(f'| {st["n_seg"]} ' + paired_line(r['name'], r['paired']))
    table = '\n'.join([head] + rows)
    ptable = '\n'.join(
        ['| seg labels | paired difference | det mAP | seg mIoU (points) | gmean |', '|---|---|---|---|---|'] + prows)
    lines = [
        '# Label-count study', '',
        ('**Quick smoke test**: numbers mean nothing.\n' if meta['quick'] else '') + f'Data: {meta["data"]}.', '',
        f'Command: `{meta["command"]}` on {meta["machine"]}; total '
        f'{meta["total_wall_time_s"]:.0f} s.', '', f'Test split, mean ± population std over '
        f'{len(meta["seeds"])} seed(s):', '', table, '', 'Paired differences to the supervised baseline (per seed, '
        'then mean ± std and seeds improving / seeds):', '', ptable
    ]
    with open(osp.join(out, 'study.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    plot_study(out, settings, meta)
    return table + '\n\n' + ptable


def plot_study(out: str, settings: Dict, meta: Dict) -> None:
    """study.png: test mIoU and mAP against the seg label count (mean ± std, every seed a dot), and below them the
    paired gains of each semi-supervised method over the supervised baseline (mean ± std)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    counts = [settings[n]['n_seg'] for n in settings]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), dpi=110, sharex=True)
    colors = {'supervised': '#7f7f7f', 'fixmatch_explicit': '#1f77b4', 'densefixmatch_explicit': '#d62728'}
    for col, (k, label, scale) in enumerate((('seg/mIoU', 'seg mIoU (%)', 1.0), ('det/bbox_mAP', 'det mAP', 1.0))):
        for key in next(iter(settings.values()))['methods']:
            rs = [settings[n]['methods'][key] for n in settings]
            name = rs[0]['name']
            means = np.array([r[k] * scale for r in rs])
            stds = np.array([r[k + '_std'] * scale for r in rs])
            axes[0, col].errorbar(counts, means, yerr=stds, marker='o', capsize=3, label=name, color=colors.get(key))
            for c, r in zip(counts, rs):
                axes[0, col].scatter(
                    [c] * len(r['runs']), [x['test'][k] * scale for x in r['runs']],
                    s=8,
                    color=colors.get(key),
                    alpha=0.5)
            if 'paired' in rs[0]:
                d = np.array([r['paired'][k]['mean'] * scale for r in rs])
                e = np.array([r['paired'][k]['std'] * scale for r in rs])
                axes[1, col].errorbar(counts, d, yerr=e, marker='o', capsize=3, label=name, color=colors.get(key))
        axes[0, col].set_title(f'test {label}', fontsize=9)
        axes[1, col].axhline(0, color='k', lw=0.8)
        axes[1, col].set_title(f'paired gain over supervised, {label} (mean ± std over seeds)', fontsize=9)
        axes[1, col].set_xlabel('seg-labeled train images (det labels fixed)', fontsize=8)
        for ax in axes[:, col]:
            ax.set_xscale('log', base=2)
            ax.set_xticks(counts, [str(c) for c in counts])
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(
        f'Label-count study: {len(meta["seeds"])} seed(s), {meta["init_iterations"]} + {meta["iterations"]} '
        'iterations, best val checkpoint tested' + (' (quick smoke test)' if meta['quick'] else ''),
        fontsize=9)
    fig.tight_layout()
    fig.savefig(osp.join(out, 'study.png'))
    plt.close(fig)


def plot_results(out: str, results: Dict, title: str) -> None:
    """results.png: per metric, each method's mean (bar) and every seed's value (dots), error bar = std."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    groups = [('det/bbox_mAP', 'det mAP', 1.0), ('seg/mIoU', 'seg mIoU', 0.01), ('multitask/gmean', 'gmean', 1.0)]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    n = len(results)
    width = 0.8 / n
    colors = ('#7f7f7f', '#1f77b4', '#d62728')
    for i, (r, color) in enumerate(zip(results.values(), colors)):
        xs = np.arange(len(groups)) + (i - (n - 1) / 2) * width
        means = [r[k] * s for k, _, s in groups]
        stds = [r[k + '_std'] * s for k, _, s in groups]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=r['name'], color=color, alpha=0.75)
        for x, (k, _, s) in zip(xs, groups):
            pts = [run['test'][k] * s for run in r['runs']]
            ax.scatter(
                np.full(len(pts), x) + np.linspace(-width / 4, width / 4, len(pts)),
                pts,
                s=12,
                color='k',
                zorder=3,
                label='one seed' if i == 0 and k == groups[0][0] else None)
        for x, m in zip(xs, means):
            ax.text(x, m, f'{m:.3f}', ha='center', va='bottom', fontsize=7)
    ax.set_xticks(np.arange(len(groups)), [g[1] for g in groups])
    ax.set_ylabel('test metric (fraction)')
    ax.set_ylim(0, ax.get_ylim()[1] * 1.08)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.08), ncol=4, frameon=False)
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(osp.join(out, 'results.png'))
    plt.close(fig)


def pseudo_label_curves(out: str, runs: Dict[str, List[dict]], names: Dict[str, str]) -> Dict:
    """pseudo_labels.png: the PseudoLabelQualityHook scalars of every semi-supervised run over its iterations
    (one line per seed). Returns per method the mean over seeds of each metric's first and last value.

    Raises:
        KeyError: a run's scalars.json lacks a scalar of ``PL_REQUIRED`` (the quality hook did not run).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), dpi=110)
    colors = {'fixmatch_explicit': '#1f77b4', 'densefixmatch_explicit': '#d62728'}
    ends = {}
    for key, seed_runs in runs.items():
        firsts, lasts = {}, {}
        for run in seed_runs:
            path = osp.join(out, run['scalars'])
            with open(path) as f:
                recs = [json.loads(line) for line in f if line.strip()]
            missing = [k for k in PL_REQUIRED if not any(k in r for r in recs)]
            if missing:
                raise KeyError(f'{path} holds no {missing}: the pseudo-label quality was not measured '
                               '(PseudoLabelQualityHook in custom_hooks and withheld_labels=True on the train set?)')
            for ax, (title, k) in zip(axes.flat, PL_PANELS):
                pts = [(r['step'], r[k]) for r in recs if k in r]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(
                        xs,
                        ys,
                        color=colors.get(key),
                        alpha=0.8,
                        lw=1.2,
                        label=names[key] if run is seed_runs[0] else None)
                    firsts.setdefault(k, []).append(ys[0])
                    lasts.setdefault(k, []).append(ys[-1])
        ends[names[key]] = {k: (float(np.mean(firsts[k])), float(np.mean(lasts[k]))) for k in firsts}
    for ax, (title, k) in zip(axes.flat, PL_PANELS):
        ax.set_title(f'{title}\n({k})', fontsize=8)
        ax.set_xlabel('iteration', fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(
        'Pseudo-labels of the EMA teacher against the labels the split withheld (one line per seed; '
        'det.pl/precision and recall are not written in an interval without pseudo / withheld boxes)',
        fontsize=8)
    fig.tight_layout()
    fig.savefig(osp.join(out, 'pseudo_labels.png'))
    plt.close(fig)
    return ends


def qualitative(out: str, runs: Dict[str, dict], cfg_options: List[str], scale: int = 2) -> None:
    """qualitative.png: per row one test image, columns ground truth then each run's prediction (boxes with
    score >= 0.3 and the segmentation), drawn by MultiTaskLocalVisualizer on CPU. ``runs``: display name ->
    ``config`` (repo-relative), ``checkpoint`` (path)."""
    import cv2
    import torch
    from mmdet.registry import DATASETS, MODELS, VISUALIZERS
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import mtssl_mm  # noqa: F401  (registers MultiTaskLocalVisualizer and the model; safe checkpoint loading)
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    init_default_scope('mmdet')
    options = dict(o.split('=', 1) for o in cfg_options if o.startswith('test_dataloader'))
    vis = VISUALIZERS.build(
        dict(type='MultiTaskLocalVisualizer', name=f'demo_qualitative_{os.getpid()}', alpha=0.45, line_width=1))
    columns, samples, indices = [], None, None
    for name, run in runs.items():
        cfg = Config.fromfile(osp.join(repo, run['config']))
        cfg.merge_from_dict(options)
        if samples is None:
            dataset = DATASETS.build(cfg.test_dataloader.dataset)
            vis.dataset_meta = dataset.metainfo
            indices = np.linspace(0, len(dataset) - 1, min(NUM_QUALITATIVE, len(dataset))).round().astype(int)
            samples = [dataset[int(i)] for i in indices]
            columns.append(('ground truth', [draw(vis, s['data_samples'], s, scale, gt=True) for s in samples]))
        model = MODELS.build(cfg.model)
        load_checkpoint(model, run['checkpoint'], map_location='cpu', logger='silent')
        model.eval()
        with torch.no_grad():
            panels = [draw(vis, model.test_step(pseudo_collate([s]))[0], s, scale, gt=False) for s in samples]
        columns.append((name, panels))
    h, w = columns[0][1][0].shape[:2]
    header = 22
    rows = [
        np.concatenate([np.pad(col[1][r], ((0, 2), (0, 2), (0, 0)), constant_values=255) for col in columns], axis=1)
        for r in range(len(indices))
    ]
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
