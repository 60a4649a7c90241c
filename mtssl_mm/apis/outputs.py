"""Turn one predicted data sample into files: boxes as JSON, the segmentation as a label-id PNG."""
from typing import Dict, List, Optional, Sequence

import numpy as np


def seg_id_table(meta: dict, num_classes: int, source: str) -> Optional[np.ndarray]:
    """The id written to the PNG for each segmentation class, or None to write the class indices (trainIds).

    Read from ``meta['seg_label_ids']`` (a sequence, one id per entry of ``seg_classes``; for Cityscapes the
    label ids of cityscapesscripts' table, see ``configs/_base_/datasets/cityscapes_multitask.py``).

    Args:
        meta (dict): The dataset metainfo.
        num_classes (int): The number of segmentation classes of the model.
        source (str): Where ``meta`` comes from, for error messages.

    Returns:
        np.ndarray | None: (num_classes,) uint8 look-up table class index -> id.

    Raises:
        ValueError: The table's length is not ``num_classes``, an id is outside 0..255, or two classes share an id.
    """
    ids = meta.get('seg_label_ids')
    if ids is None:
        return None
    ids = [int(i) for i in ids]
    if len(ids) != num_classes:
        raise ValueError(f'{source}: seg_label_ids has {len(ids)} ids, the segmentation head has {num_classes} '
                         'classes')
    if not all(0 <= i <= 255 for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f'{source}: seg_label_ids must be distinct ids in 0..255 (one per class), got {ids}')
    return np.asarray(ids, np.uint8)


def boxes_to_json(pred_instances, classes: Sequence[str], score_thr: float) -> List[Dict]:
    """COCO-style boxes of one image, best first.

    Args:
        pred_instances (InstanceData): ``bboxes`` (N, 4) ``[x1, y1, x2, y2]`` in pixels of the original image,
            ``scores`` (N,), ``labels`` (N,) class indices.
        classes (Sequence[str]): Detection class names.
        score_thr (float): Boxes with a score below it are left out.

    Returns:
        list[dict]: ``{"bbox": [x, y, w, h], "category": name, "category_id": index, "score": s}`` (pixels).
    """
    bboxes = pred_instances.bboxes.detach().cpu().numpy().astype(float)
    scores = pred_instances.scores.detach().cpu().numpy().astype(float)
    labels = pred_instances.labels.detach().cpu().numpy().astype(int)
    out = []
    for i in np.argsort(-scores, kind='stable'):
        if scores[i] < score_thr:
            continue
        x1, y1, x2, y2 = bboxes[i].tolist()
        label = int(labels[i])
        if not 0 <= label < len(classes):
            raise ValueError(f'predicted class index {label} is outside the {len(classes)} detection classes')
        out.append(dict(bbox=[x1, y1, x2 - x1, y2 - y1], category=classes[label], category_id=label,
                        score=float(scores[i])))
    return out


def seg_to_ids(pred_sem_seg, table: Optional[np.ndarray]) -> np.ndarray:
    """The predicted class map as written to the PNG.

    Args:
        pred_sem_seg (PixelData): ``sem_seg`` (1, H, W) class indices at the original image size.
        table (np.ndarray | None): From :func:`seg_id_table`; None keeps the class indices.

    Returns:
        np.ndarray: (H, W) uint8.
    """
    seg = pred_sem_seg.sem_seg.detach().cpu().numpy()[0].astype(np.int64)
    return table[seg] if table is not None else seg.astype(np.uint8)
