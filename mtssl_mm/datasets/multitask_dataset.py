"""One dataset for every mix of labels: each image may be labeled for detection, segmentation, both or none."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS

from ..tasks.task_data import TASK_DATA, check_tasks, task_data
from ..utils.json_io import load_json

# mmdet transforms whose random draws or outcome depend on the boxes (refused with withheld_labels=True)
BOX_DEPENDENT_TRANSFORMS = ('FilterAnnotations', 'MinIoURandomCrop', 'RandomCenterCropPad')


@DATASETS.register_module()
class MultiTaskDataset(BaseDetDataset):
    """Images with partial labels for any set of tasks, read from one OpenMMLab-2.0 JSON file.

    The dataset knows no task by name: each task of ``tasks`` reads, checks and converts its part of an entry
    through its registered data side (:data:`~mtssl_mm.tasks.TASK_DATA`, e.g. :class:`~mtssl_mm.tasks.DetectionData`
    for ``instances``, :class:`~mtssl_mm.tasks.SegmentationData` for ``seg_map_path``). The annotation file
    (written by ``tools/dataset_converters/*``; the format is documented in docs/data.md), with det and seg::

        {"metainfo": {"classes": [...det class names...], "seg_classes": [...], "palette": [...],
                      "seg_palette": [...]},
         "data_list": [
           {"img_path": "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png",
            "height": 1024, "width": 2048,
            "labeled_tasks": ["det", "seg"],
            "seg_map_path": "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png",
            "instances": [{"bbox": [x1, y1, x2, y2], "label": "car", "ignore_flag": 0}, ...]},
           ...]}

    Paths are relative to ``data_root`` joined with the ``img`` (images) or ``seg`` (maps) entry of
    ``data_prefix``; boxes
    are in pixels of the original image; ``ignore_flag=1`` marks crowd / ignore regions (never positives,
    ``iscrowd`` for COCO evaluation). ``labeled_tasks`` says which tasks the image is labeled for: an image
    labeled for ``det`` with no instances is a valid all-negative image, an image not labeled for ``det``
    has no detection target at all. Class names in ``instances`` are mapped to indices of
    ``metainfo['classes']`` (from the config if given there, else from the file); an unknown name is an
    error naming the annotation file and the image. The experiment's ``tasks`` are added to the metainfo
    (``metainfo['tasks']``), from which :class:`~mtssl_mm.evaluation.MultiTaskMetric` takes the tasks it evaluates.

    Args:
        tasks (Sequence[str], optional): The tasks this experiment trains/evaluates, each registered in
            :data:`~mtssl_mm.tasks.TASK_DATA`. Each sample's ``labeled_tasks`` is intersected with it, so a
            detection-only experiment sees seg-labeled images as unlabeled. Default: every task that some entry
            of the annotation file is labeled for, in registration order (an error for a file that labels no
            image: a set of unlabeled images, concatenated to labeled ones, must name the experiment's tasks).
        split_file (str, optional): A JSON file (relative to ``data_root`` unless absolute)
            ``{"labeled": {task: [img_path, ...], ...}}`` that
            replaces the ``labeled_tasks`` of the annotation file (used for the low-data splits written by
            ``tools/make_partial_split.py``). Images not listed for a task become unlabeled for it. Every
            listed image must exist in the annotation file and carry that task's labels.
        task_ann_files (dict, optional): Task name -> a JSON file (relative to ``data_root`` unless absolute) with
            that task's labels for some images of the annotation file, ``{"metainfo": {...}, "data_list":
            [{"img_path": ..., <the task's fields>}, ...]}`` (e.g. BDD100K's image attributes,
            ``annotations/attributes_train.json``): a listed image is labeled for the task and gets the fields;
            an image not listed is unlabeled for it. A task's converter can so add its labels without rewriting
            the annotation file. An image not in the annotation file, a field or a metainfo key the annotation
            file already has (with another value) is an error naming both files.
        withheld_labels (bool): Also hand the pipeline the labels that ``split_file`` took away, as
            ``withheld_tasks`` (per sample: the tasks of ``tasks`` the annotation file labels but the split
            does not). They are loaded and moved by the pipeline like real labels and packed apart (each
            task's ``TaskData.withheld_field``, e.g. ``withheld_instances``; :class:`PackMultiTaskInputs`); nothing
            trains on them:
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
                 tasks: Optional[Sequence[str]] = None,
                 split_file: Optional[str] = None,
                 task_ann_files: Optional[Dict[str, str]] = None,
                 withheld_labels: bool = False,
                 **kwargs) -> None:
        self.tasks = None if tasks is None else check_tasks(tasks, 'MultiTaskDataset `tasks`')
        self.task_ann_files = dict(task_ann_files or {})
        check_tasks(list(self.task_ann_files), 'MultiTaskDataset `task_ann_files`')
        self.split_file = split_file
        self.withheld_labels = bool(withheld_labels)
        super().__init__(*args, **kwargs)
        if self.withheld_labels:
            self._check_pipeline()

    def _check_pipeline(self) -> None:
        """Refuse transforms whose draws or outcome depend on the boxes (withheld boxes would change them)."""

        def walk(transforms):  # nested wrappers too: RandomChoice, RandomApply, KeyMapper, TestTimeAug hold Composes
            for transform in transforms:
                yield transform
                inner = getattr(transform, 'transforms', None)
                if inner is not None:
                    yield from walk(inner.transforms if hasattr(inner, 'transforms') else inner)

        for transform in walk(getattr(self.pipeline, 'transforms', [])):
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
        for task, path in self.task_ann_files.items():
            if not osp.isabs(path) and self.data_root:
                self.task_ann_files[task] = osp.join(self.data_root, path)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        """Read the annotation file once: check and merge its metainfo, then parse every entry."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'annotation file {self.ann_file} does not exist')
        annotations = load_json(self.ann_file, backend_args=self.backend_args)
        if not isinstance(annotations, dict) or 'data_list' not in annotations or 'metainfo' not in annotations:
            raise ValueError(f'{self.ann_file}: expected a JSON object with "metainfo" and "data_list"')
        for task, path in self.task_ann_files.items():
            self._merge_task_file(task, path, annotations)
        file_meta = annotations['metainfo']
        if self.tasks is None:
            present = {t for raw in annotations['data_list'] for t in raw.get('labeled_tasks', ())}
            self.tasks = tuple(t for t in TASK_DATA if t in present)
            if not self.tasks:  # e.g. a file of unlabeled images: its samples must still carry the tasks' keys
                raise ValueError(f'{self.ann_file}: no image is labeled for any task, so `tasks` cannot be taken '
                                 'from the file; set the experiment\'s tasks')
        specs = {t: task_data(t) for t in self.tasks}
        for spec in specs.values():
            spec.check_metainfo(self._metainfo, file_meta, self.ann_file)
        for key, value in file_meta.items():
            self._metainfo.setdefault(key, value)
        for name, spec in specs.items():
            for key in spec.required_meta:
                if key not in self._metainfo:
                    raise KeyError(f'{self.ann_file}: metainfo has no {key!r} (needed by task {name!r}), neither in '
                                   'the file nor in the config')
        self._metainfo['tasks'] = self.tasks
        self._next_img_id = 0
        data_list = [self.parse_data_info(raw) for raw in annotations['data_list']]
        if self.split_file is not None:
            self._apply_split(data_list)
        if self.withheld_labels:
            for info in data_list:
                info['withheld_tasks'] = tuple(t for t in self.tasks
                                               if t in info['ann_labeled_tasks'] and t not in info['labeled_tasks'])
        return data_list

    def _merge_task_file(self, task: str, path: str, annotations: dict) -> None:
        """Add the labels of ``task`` from ``path`` (see ``task_ann_files``) to the entries of ``annotations``."""
        if not osp.isfile(path):
            raise FileNotFoundError(f'task_ann_files[{task!r}]: {path} does not exist')
        extra = load_json(path, backend_args=self.backend_args)
        if not isinstance(extra, dict) or not isinstance(extra.get('data_list'), list):
            raise ValueError(f'{path}: expected a JSON object with "metainfo" and "data_list"')
        meta = annotations['metainfo']
        for key, value in extra.get('metainfo', {}).items():
            if key in meta and meta[key] != value:
                raise ValueError(f'{path}: metainfo {key!r} differs from that of {self.ann_file}')
            meta[key] = value
        by_path = {raw.get('img_path'): raw for raw in annotations['data_list']}
        for entry in extra['data_list']:
            raw = by_path.get(entry.get('img_path'))
            if raw is None:
                raise ValueError(f'{path}: image {entry.get("img_path")!r} is not in {self.ann_file}')
            clash = [k for k in entry if k != 'img_path' and k in raw]
            if clash:
                raise ValueError(f'{path}: image {entry["img_path"]}: field(s) {clash} are in {self.ann_file} too')
            raw.update({k: v for k, v in entry.items() if k != 'img_path'})
            if task not in raw.get('labeled_tasks', ()):
                raw['labeled_tasks'] = list(raw.get('labeled_tasks', ())) + [task]

    def parse_data_info(self, raw: dict) -> dict:
        for key in ('img_path', 'height', 'width', 'labeled_tasks'):
            if key not in raw:
                raise KeyError(f'{self.ann_file}: an entry of data_list has no "{key}": {raw}')
        name = raw['img_path']
        bad = set(raw['labeled_tasks']) - set(TASK_DATA)
        if bad:
            raise ValueError(f'{self.ann_file}: image {name}: unknown task(s) {sorted(bad)} in '
                             f'labeled_tasks; known: {sorted(TASK_DATA)}')
        info = dict(
            img_path=osp.join(self.data_prefix.get('img', ''), name),
            img_id=self._next_img_id,
            height=int(raw['height']),
            width=int(raw['width']),
            ann_labeled_tasks=tuple(raw['labeled_tasks']),
        )
        self._next_img_id += 1
        for task in self.tasks:
            task_data(task).parse(raw, info, task in raw['labeled_tasks'], self)
        # the experiment's tasks travel with the sample: LoadMultiTaskAnnotations loads (or empties) each of them
        info['tasks'] = self.tasks
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
        labeled = {t: set() for t in self.tasks}
        for task, names in split['labeled'].items():
            if task not in TASK_DATA:
                raise ValueError(f'split file {self.split_file}: unknown task {task!r}; known: {sorted(TASK_DATA)}')
            labeled.setdefault(task, set())
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
        return [inst['bbox_label'] for inst in self.get_data_info(idx).get('instances', [])]

    def labeled_tasks(self, idx: int) -> tuple:
        """The tasks sample ``idx`` is labeled for (after ``tasks`` and ``split_file``)."""
        return self.get_data_info(idx)['labeled_tasks']
