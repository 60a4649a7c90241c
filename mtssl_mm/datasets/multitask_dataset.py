"""One dataset for every mix of labels: each image may be labeled for detection, segmentation, both or none."""
import os.path as osp
from typing import List, Optional, Sequence

from mmdet.datasets import BaseDetDataset
from ..utils.json_io import load_json
from mmdet.registry import DATASETS

KNOWN_TASKS = ('det', 'seg')
# mmdet transforms whose random draws or outcome depend on the boxes (refused with withheld_labels=True)
BOX_DEPENDENT_TRANSFORMS = ('FilterAnnotations', 'MinIoURandomCrop', 'RandomCenterCropPad')


@DATASETS.register_module()
class MultiTaskDataset(BaseDetDataset):
    """Images with partial detection / segmentation labels, read from one OpenMMLab-2.0 JSON file.

    The annotation file (written by ``tools/dataset_converters/*``; the format is documented in README)::

        {"metainfo": {"classes": [...det class names...], "seg_classes": [...], "palette": [...],
                      "seg_palette": [...]},
         "data_list": [
           {"img_path": "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png",
            "height": 1024, "width": 2048,
            "labeled_tasks": ["det", "seg"],
            "seg_map_path": "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png",
            "instances": [{"bbox": [x1, y1, x2, y2], "label": "car", "ignore_flag": 0}, ...]},
           ...]}

    Paths are relative to ``data_root`` joined with ``data_prefix['img']`` / ``data_prefix['seg']``; boxes
    are in pixels of the original image; ``ignore_flag=1`` marks crowd / ignore regions (never positives,
    ``iscrowd`` for COCO evaluation). ``labeled_tasks`` says which tasks the image is labeled for: an image
    labeled for ``det`` with no instances is a valid all-negative image, an image not labeled for ``det``
    has no detection target at all. Class names in ``instances`` are mapped to indices of
    ``metainfo['classes']`` (from the config if given there, else from the file); an unknown name is an
    error naming the annotation file and the image.

    Args:
        tasks (Sequence[str]): The tasks this experiment trains/evaluates. Each sample's ``labeled_tasks`` is
            intersected with it, so a detection-only experiment sees seg-labeled images as unlabeled.
        split_file (str, optional): A JSON file (relative to ``data_root`` unless absolute)
            ``{"labeled": {"det": [img_path, ...], "seg": [...]}}`` that
            replaces the ``labeled_tasks`` of the annotation file (used for the low-data splits written by
            ``tools/make_partial_split.py``). Images not listed for a task become unlabeled for it. Every
            listed image must exist in the annotation file and carry that task's labels.
        withheld_labels (bool): Also hand the pipeline the labels that ``split_file`` took away, as
            ``withheld_tasks`` (per sample: the tasks of ``tasks`` the annotation file labels but the split
            does not). They are loaded and moved by the pipeline like real labels and packed apart
            (``withheld_instances`` / ``withheld_sem_seg``, :class:`PackMultiTaskInputs`); nothing trains on them:
            :class:`~mtssl_mm.engine.PseudoLabelQualityHook` measures the teacher's pseudo-labels against them.
            Defaults to False (data without a split withholds nothing). The pipeline must not make a random draw
            depend on the boxes (``RandomCrop(allow_negative_crop=False)`` retries crops without boxes,
            ``FilterAnnotations`` drops samples, ``MinIoURandomCrop`` draws crops around them): such transforms
            are refused, so that training is the same with the option on or off.
        filter_cfg (dict, optional): ``labeled='any'`` keeps images labeled for at least one of ``tasks``,
            ``labeled='all'`` keeps images labeled for all of them (the supervised baselines);
            unset keeps every image (semi-supervised training). Ignored in ``test_mode``.
        **kwargs: As :class:`mmdet.datasets.BaseDetDataset`.
    """

    def __init__(self,
                 *args,
                 tasks: Sequence[str] = KNOWN_TASKS,
                 split_file: Optional[str] = None,
                 withheld_labels: bool = False,
                 **kwargs) -> None:
        unknown = set(tasks) - set(KNOWN_TASKS)
        if unknown:
            raise ValueError(f'MultiTaskDataset: unknown task(s) {sorted(unknown)} in `tasks`; '
                             f'known: {KNOWN_TASKS}')
        self.tasks = tuple(tasks)
        self.split_file = split_file
        self.withheld_labels = bool(withheld_labels)
        super().__init__(*args, **kwargs)
        if self.withheld_labels:
            self._check_pipeline()

    def _check_pipeline(self) -> None:
        """Refuse transforms whose draws or outcome depend on the boxes (withheld boxes would change them)."""
        for transform in getattr(self.pipeline, 'transforms', []):
            name = type(transform).__name__
            if getattr(transform, 'allow_negative_crop', True) is False or name in BOX_DEPENDENT_TRANSFORMS:
                raise ValueError(f'MultiTaskDataset(withheld_labels=True) with {name} in the pipeline: its outcome '
                                 'depends on the boxes, so loading withheld boxes would change training; set '
                                 'allow_negative_crop=True / remove it, or withheld_labels=False')

    def _join_prefix(self):
        super()._join_prefix()
        # like ann_file: a relative split file is relative to data_root
        if self.split_file and not osp.isabs(self.split_file) and self.data_root:
            self.split_file = osp.join(self.data_root, self.split_file)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        """Read the annotation file once: check and merge its metainfo, then parse every entry."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'annotation file {self.ann_file} does not exist')
        annotations = load_json(self.ann_file, backend_args=self.backend_args)
        if not isinstance(annotations, dict) or 'data_list' not in annotations or 'metainfo' not in annotations:
            raise ValueError(f'{self.ann_file}: expected a JSON object with "metainfo" and "data_list"')
        file_meta = annotations['metainfo']
        # seg maps hold class indices, so both lists must agree (det instances are matched by name instead)
        configured_seg, file_seg = self._metainfo.get('seg_classes'), file_meta.get('seg_classes')
        if configured_seg is not None and file_seg is not None and list(configured_seg) != list(file_seg):
            raise ValueError(f'{self.ann_file}: metainfo seg_classes {list(file_seg)} differ from the config\'s '
                             f'seg_classes {list(configured_seg)}')
        for key, value in file_meta.items():
            self._metainfo.setdefault(key, value)
        if 'classes' not in self._metainfo and 'det' in self.tasks:
            raise KeyError(f'{self.ann_file}: metainfo has no "classes" (detection class names)')
        self._next_img_id = 0
        data_list = [self.parse_data_info(raw) for raw in annotations['data_list']]
        if self.split_file is not None:
            self._apply_split(data_list)
        if self.withheld_labels:
            for info in data_list:
                info['withheld_tasks'] = tuple(t for t in self.tasks
                                               if t in info['ann_labeled_tasks'] and t not in info['labeled_tasks'])
        return data_list

    def parse_data_info(self, raw: dict) -> dict:
        for key in ('img_path', 'height', 'width', 'labeled_tasks'):
            if key not in raw:
                raise KeyError(f'{self.ann_file}: an entry of data_list has no "{key}": {raw}')
        name = raw['img_path']
        bad = set(raw['labeled_tasks']) - set(KNOWN_TASKS)
        if bad:
            raise ValueError(f'{self.ann_file}: image {name}: unknown task(s) {sorted(bad)} in '
                             f'labeled_tasks; known: {KNOWN_TASKS}')
        info = dict(
            img_path=osp.join(self.data_prefix.get('img', ''), name),
            img_id=self._next_img_id,
            height=int(raw['height']),
            width=int(raw['width']),
            ann_labeled_tasks=tuple(raw['labeled_tasks']),
        )
        self._next_img_id += 1
        seg_map = raw.get('seg_map_path')
        if 'seg' in raw['labeled_tasks'] and not seg_map:
            raise KeyError(f'{self.ann_file}: image {name} is labeled for "seg" but has no seg_map_path')
        info['seg_map_path'] = osp.join(self.data_prefix.get('seg', ''), seg_map) if seg_map else None
        classes = list(self._metainfo.get('classes', ()))
        instances = []
        for inst in raw.get('instances', []):
            label = inst.get('label')
            if label not in classes:
                raise ValueError(f'{self.ann_file}: image {name}: unknown class name {label!r}; '
                                 f'known classes: {classes}')
            x1, y1, x2, y2 = (float(v) for v in inst['bbox'])
            if not (x2 > x1 and y2 > y1):
                raise ValueError(f'{self.ann_file}: image {name}: degenerate box {inst["bbox"]} '
                                 f'(expected [x1, y1, x2, y2] with x2 > x1, y2 > y1)')
            instances.append(dict(bbox=[x1, y1, x2, y2], bbox_label=classes.index(label),
                                  ignore_flag=int(inst.get('ignore_flag', 0))))
        info['instances'] = instances
        info['labeled_tasks'] = tuple(t for t in self.tasks if t in raw['labeled_tasks'])
        return info

    def _apply_split(self, data_list: List[dict]) -> None:
        if not osp.isfile(self.split_file):
            raise FileNotFoundError(f'split file {self.split_file} does not exist')
        split = load_json(self.split_file)
        if not isinstance(split, dict) or not isinstance(split.get('labeled'), dict):
            raise ValueError(f'split file {self.split_file}: expected {{"labeled": {{task: [img_path, ...]}}}}')
        prefix = self.data_prefix.get('img', '')
        by_path = {info['img_path']: info for info in data_list}
        labeled = {t: set() for t in KNOWN_TASKS}
        for task, names in split['labeled'].items():
            if task not in KNOWN_TASKS:
                raise ValueError(f'split file {self.split_file}: unknown task {task!r}; known: {KNOWN_TASKS}')
            for name in names:
                info = by_path.get(osp.join(prefix, name))
                if info is None:
                    raise ValueError(f'split file {self.split_file}: image {name!r} ({task}) is not in '
                                     f'{self.ann_file}')
                if task not in info['ann_labeled_tasks']:
                    raise ValueError(f'split file {self.split_file}: image {name!r} is listed as labeled '
                                     f'for {task!r} but {self.ann_file} has no {task} labels for it')
                labeled[task].add(info['img_path'])
        for info in data_list:
            info['labeled_tasks'] = tuple(t for t in self.tasks if info['img_path'] in labeled[t])

    # ---------------------------------------------------------------- filtering
    def filter_data(self) -> List[dict]:
        if self.test_mode or not self.filter_cfg or self.filter_cfg.get('labeled') is None:
            return self.data_list
        unknown = set(self.filter_cfg) - {'labeled'}
        if unknown:
            raise KeyError(f'MultiTaskDataset: unknown filter_cfg key(s) {sorted(unknown)}; known: ["labeled"]')
        mode = self.filter_cfg['labeled']
        if mode == 'any':
            keep = [d for d in self.data_list if d['labeled_tasks']]
        elif mode == 'all':
            keep = [d for d in self.data_list if set(self.tasks) <= set(d['labeled_tasks'])]
        else:
            raise ValueError(f"MultiTaskDataset: filter_cfg.labeled must be 'any', 'all' or None, got {mode!r}")
        if not keep:
            raise ValueError(f'{self.ann_file}: no image is left after filter_cfg={self.filter_cfg} '
                             f'with tasks={self.tasks}')
        return keep

    # ----------------------------------------------------------------- helpers
    def get_cat_ids(self, idx: int) -> List[int]:
        return [inst['bbox_label'] for inst in self.get_data_info(idx)['instances']]

    def labeled_tasks(self, idx: int) -> tuple:
        """The tasks sample ``idx`` is labeled for (after ``tasks`` and ``split_file``)."""
        return self.get_data_info(idx)['labeled_tasks']
