"""Offline analysis of saved predictions (``tools/test.py --out x.pkl``): confusion matrices and per-image scores.

Every function here counts only the images labeled for its task (``labeled_tasks``): an image that is not
labeled for detection adds no false positive and no missed box to the detection matrix, an image that is not
labeled for segmentation adds no pixel (the evaluator does the same, see ``MultiTaskMetric``). Used by
``tools/analysis/confusion_matrix.py`` and ``tools/analysis/analyze_results.py``.

What a task's matrix and score are is the task's own: its data side (:data:`~mtssl_mm.tasks.TASK_DATA`) implements
:meth:`~mtssl_mm.tasks.TaskData.confusion_matrix` and :meth:`~mtssl_mm.tasks.TaskData.image_score`, and this
module hands it the pairs ``(data info, prediction)`` of the images labeled for it, matched by ``img_path``
(ground truth from ``dataset.get_data_info(i)``, predictions from the pickle). Detection
(:class:`~mtssl_mm.tasks.DetectionData`): mmdet's box confusion matrix and per-image AP; segmentation
(:class:`~mtssl_mm.tasks.SegmentationData`): pixel counts and per-image mIoU. A task without them (``attr``) has
no analysis: asking for it is an error that names the tasks that have one.
"""
import math
import os.path as osp
import pickle
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config
from mmengine.utils import is_method_overridden

from ..tasks.detection.data import gt_boxes  # noqa: F401 (lives with its task; tools/analysis import it here)
from ..tasks.segmentation.data import IGNORE_INDEX, load_seg_map, seg_image_score  # noqa: F401 (likewise)
from ..tasks.task_data import TASK_DATA, TaskData
from ..utils.confusion import iou_from_confusion  # noqa: F401 (likewise)


# ------------------------------------------------------------------------------------------ loading
def build_test_dataset(cfg):
    """The config's test dataset, built in the config's default scope (mmdet) as the Runner builds it."""
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return DATASETS.build(cfg.test_dataloader.dataset)


def load_predictions(path: str) -> List[dict]:
    """The list of per-image prediction dicts that ``tools/test.py --out`` (mmengine ``DumpResults``) wrote."""
    with open(path, 'rb') as f:
        preds = pickle.load(f)
    if not isinstance(preds, list) or not all(isinstance(p, dict) and 'img_path' in p for p in preds):
        raise ValueError(f'{path}: expected a list of per-image dicts with "img_path" (tools/test.py --out)')
    return preds


def match_to_dataset(preds: Sequence[dict], dataset) -> List[Tuple[dict, dict]]:
    """Pairs ``(data_info, prediction)`` in dataset order, matched by ``img_path``.

    Raises:
        KeyError: A prediction of an image the dataset does not have, or an image of the dataset without a
            prediction (names the first few).
    """
    by_path = {}
    for p in preds:
        by_path[p['img_path']] = p
    pairs, missing = [], []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if info['img_path'] in by_path:
            pairs.append((info, by_path.pop(info['img_path'])))
        else:
            missing.append(info['img_path'])
    if by_path:
        raise KeyError(f'{len(by_path)} predicted images are not in the dataset, e.g. {sorted(by_path)[:3]}; '
                       'use the config the predictions were made with')
    if missing:
        raise KeyError(f'{len(missing)} images of the dataset have no prediction, e.g. {missing[:3]}')
    return pairs


def labeled_for(pairs: Sequence[Tuple[dict, dict]], task: str) -> List[Tuple[dict, dict]]:
    """The pairs whose image is labeled for ``task`` (the dataset's ``labeled_tasks``)."""
    for info, _ in pairs:
        if 'labeled_tasks' not in info:
            raise KeyError(f'data info of {info.get("img_path")} has no "labeled_tasks"')
    return [(info, pred) for info, pred in pairs if task in info['labeled_tasks']]


# ------------------------------------------------------------------------------------ the task's side
def analysis_tasks(hook: str = 'image_score') -> List[str]:
    """The registered tasks whose data side implements ``hook`` (``'image_score'``, ``'confusion_matrix'``)."""
    return [name for name, spec in TASK_DATA.items() if is_method_overridden(hook, TaskData, type(spec))]


def task_analysis(task: str, hook: str = 'image_score') -> TaskData:
    """The data side of ``task``, which implements ``hook``.

    Raises:
        ValueError: ``task`` is not registered or has no ``hook``; names the tasks that have one.
    """
    spec = TASK_DATA.get(task)
    if spec is not None and is_method_overridden(hook, TaskData, type(spec)):
        return spec
    why = 'is not a registered task' if spec is None else f'has no analysis ({type(spec).__name__} has no {hook})'
    raise ValueError(f'task {task!r} {why}; tasks that have one: {analysis_tasks(hook)}')


# ------------------------------------------------------------------------------------ confusion matrices
def confusion_matrix(pairs: Sequence[Tuple[dict, dict]], task: str, num_classes: int, **options) -> np.ndarray:
    """The confusion matrix of ``task`` over the images of ``pairs`` labeled for it (its data side's
    :meth:`~mtssl_mm.tasks.TaskData.confusion_matrix`; ``options`` are the task's: detection ``score_thr``,
    ``tp_iou_thr``; segmentation ``ignore_index``).

    Returns:
        np.ndarray: Counts ``[ground truth, prediction]``; detection ``(K + 1, K + 1)`` float64 with the
        background at index K, segmentation ``(K, K)`` int64 pixels.
    """
    return task_analysis(task, 'confusion_matrix').confusion_matrix(labeled_for(pairs, task), num_classes, **options)


def det_confusion_matrix(pairs: Sequence[Tuple[dict, dict]],
                         num_classes: int,
                         score_thr: float = 0.3,
                         tp_iou_thr: float = 0.5) -> np.ndarray:
    """``confusion_matrix(pairs, 'det', ...)`` (:func:`~mtssl_mm.tasks.detection.data.box_confusion_matrix`), the
    name ``tools/analysis/confusion_matrix.py`` uses: ``(K + 1, K + 1)`` float64, index K the background."""
    return confusion_matrix(pairs, 'det', num_classes, score_thr=score_thr, tp_iou_thr=tp_iou_thr)


def seg_confusion_matrix(pairs: Sequence[Tuple[dict, dict]],
                         num_classes: int,
                         ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """``confusion_matrix(pairs, 'seg', ...)`` (:func:`~mtssl_mm.tasks.segmentation.data.pixel_confusion_matrix`),
    the name ``tools/analysis/confusion_matrix.py`` uses: ``[gt, pred]`` pixel counts, (K, K) int64."""
    return confusion_matrix(pairs, 'seg', num_classes, ignore_index=ignore_index)


# ----------------------------------------------------------------------------------- per-image scores
def image_scores(pairs: Sequence[Tuple[dict, dict]], task: str, num_classes: int, score_thr: float = 0.0) -> List[Dict]:
    """Per-image score of ``task`` over the images labeled for it: ``[{'img_path', 'score'}]`` in dataset order.

    The score is the task's (:meth:`~mtssl_mm.tasks.TaskData.image_score`): ``det`` AP@[.5:.95] of the image
    (:func:`~mtssl_mm.tasks.detection.data.det_image_score`), ``seg`` its mIoU
    (:func:`~mtssl_mm.tasks.segmentation.data.seg_image_score`); images scored NaN (no labeled pixel) are left out.

    Raises:
        ValueError: ``task`` has no per-image score (names the tasks that have one).
    """
    spec = task_analysis(task, 'image_score')
    out = []
    for info, pred in labeled_for(pairs, task):
        score = spec.image_score(info, pred, num_classes, score_thr)
        if not math.isnan(score):
            out.append(dict(img_path=info['img_path'], score=score))
    return out


def worst_and_best(scores: Sequence[Dict], topk: int) -> Tuple[List[Dict], List[Dict]]:
    """The ``topk`` lowest-scoring and the ``topk`` highest-scoring entries (ties: dataset order)."""
    order = sorted(range(len(scores)), key=lambda i: (scores[i]['score'], i))
    worst = [scores[i] for i in order[:topk]]
    best = [scores[i] for i in sorted(range(len(scores)), key=lambda i: (-scores[i]['score'], i))[:topk]]
    return worst, best


def normalise_rows(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum, in % (rows without counts stay 0)."""
    sums = cm.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(cm * 100.0, sums, out=np.zeros(cm.shape, dtype=np.float64), where=sums > 0)


def plot_confusion_matrix(cm: np.ndarray,
                          labels: Sequence[str],
                          out_file: Optional[str] = None,
                          title: str = 'Normalized confusion matrix (%)',
                          show: bool = False) -> None:
    """Row-normalised matrix as an image (rows: ground truth, columns: prediction), values in each cell."""
    import matplotlib
    if not show:
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    norm = normalise_rows(cm)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(4, 0.55 * n), max(3.5, 0.45 * n)), dpi=120)
    im = ax.imshow(norm, cmap='plasma', vmin=0, vmax=100)
    fig.colorbar(im, ax=ax)
    ax.set_title(title)
    ax.set_xlabel('Prediction')
    ax.set_ylabel('Ground truth')
    ax.set_xticks(range(n), labels, rotation=60, ha='right', fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    for i in range(n):
        for j in range(n):
            if norm[i, j] >= 0.5:
                ax.text(
                    j,
                    i,
                    f'{norm[i, j]:.0f}',
                    ha='center',
                    va='center',
                    fontsize=6,
                    color='w' if norm[i, j] < 50 else 'k')
    fig.tight_layout()
    if out_file:
        fig.savefig(out_file)
    if show:
        plt.show()
    plt.close(fig)


def load_inputs(parser, args):
    """The config's test dataset and its ``(data_info, prediction)`` pairs, for ``tools/analysis/*.py`` (``args``:
    ``config``, ``prediction_path``, ``cfg_options``).

    Bad input ends the command with one line ``<prog>: error: <file>: <what>`` and exit status 2 (no traceback): a
    missing config or pickle, a pickle that cannot be read (truncated, not a pickle) or is not the list that
    ``tools/test.py --out`` writes, a test set whose files are missing, predictions of other images than the test
    set's.

    Returns:
        tuple: The config, the dataset and the pairs.

    Raises:
        SystemExit: (status 2) on bad input, as above.
    """

    def fail(message):
        parser.exit(2, f'{parser.prog}: error: {message}\n')

    for path, what in ((args.config, 'config file'), (args.prediction_path, 'predictions pickle')):
        if not osp.isfile(path):
            fail(f'{path} does not exist (the {what})')
    try:
        preds = load_predictions(args.prediction_path)
    except Exception as e:  # noqa: BLE001 - unpickling a bad file raises anything (EOFError, UnpicklingError, ...)
        message = ' '.join(str(e).splitlines())  # load_predictions' own check names the file: a pickle of another thing
        fail(
            message if message.startswith(f'{args.prediction_path}: ') else
            f'{args.prediction_path}: cannot read the predictions pickle ({type(e).__name__}: {message})')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    try:
        dataset = build_test_dataset(cfg)
    except FileNotFoundError as e:
        fail(f'{args.config}: test dataset: {e}')
    try:
        pairs = match_to_dataset(preds, dataset)
    except KeyError as e:  # predictions of other images than the config's test set
        fail(f'{args.prediction_path}: {e.args[0]}')
    return cfg, dataset, pairs
