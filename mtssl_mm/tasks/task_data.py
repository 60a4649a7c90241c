"""The data side of a task: what it reads from an annotation entry, loads, packs, withholds and is evaluated with.

A task is the unit of extension on the model side (:class:`~mtssl_mm.tasks.BaseTask`) and on the data side
(:class:`TaskData`). The dataset, the loading and packing transforms, the evaluator and the split tool know no
task by name: they look each task of the experiment up in :data:`TASK_DATA` and call it::

    annotation entry ──► TaskData.parse ──► data info ──► LoadMultiTaskAnnotations ──► TaskData.load
        (MultiTaskDataset, once per image)        (labeled or withheld: its labels; else its "empty" value)
    ──► geometric transforms ──► PackMultiTaskInputs ──► TaskData.take_withheld (labels the split withheld, moved
        out of the training keys) + TaskData.pack (fields mmdet's PackDetInputs does not pack)
    ──► MultiTaskMetric: TaskData.metric / main_key / meta_keys (the task's default evaluation)

A task's entry in the annotation file is labeled for it when ``labeled_tasks`` holds its :attr:`TaskData.name`;
a split file (``{"labeled": {name: [img_path, ...]}}``) withholds it from the images it does not list.
"""
from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple, Type

#: task name (as in ``labeled_tasks``, split files and the model's ``tasks`` dict) -> its data side
TASK_DATA: Dict[str, 'TaskData'] = {}


def register_task_data(cls: Type['TaskData']) -> Type['TaskData']:
    """Class decorator: register an instance of ``cls`` under ``cls.name`` in :data:`TASK_DATA`."""
    if not cls.name:
        raise ValueError(f'{cls.__name__}: a TaskData class needs a `name`')
    if cls.name in TASK_DATA and type(TASK_DATA[cls.name]) is not cls:
        raise KeyError(f'task data {cls.name!r} registered twice ({type(TASK_DATA[cls.name]).__name__}, '
                       f'{cls.__name__})')
    TASK_DATA[cls.name] = cls()
    return cls


def task_data(name: str, where: str = '') -> 'TaskData':
    """The registered data side of task ``name``; a KeyError that names ``where`` and the known tasks otherwise."""
    if name not in TASK_DATA:
        raise KeyError(f'{where + ": " if where else ""}unknown task {name!r}; known tasks: {sorted(TASK_DATA)} '
                       '(a task registers its data side with @register_task_data in mtssl_mm/tasks/)')
    return TASK_DATA[name]


def check_tasks(tasks: Sequence[str], where: str) -> Tuple[str, ...]:
    """``tasks`` as a tuple, each registered (an error naming ``where`` otherwise)."""
    if isinstance(tasks, str):
        raise TypeError(f'{where}: tasks must be a sequence of task names, got the string {tasks!r}')
    for name in tasks:
        task_data(name, where)
    return tuple(tasks)


class PredictionOptions(NamedTuple):
    """How :class:`~mtssl_mm.apis.MultiTaskInferencer` writes one image's predictions (``TaskData.prediction_to_json``).

    Attributes:
        out_dir (str): The output folder (``''``: write no file, return arrays instead).
        name (str): The image's output name (file stem, made distinct).
        score_thr (float): Boxes scoring below it are left out.
        train_ids (bool): Segmentation maps as class indices even where the metainfo maps them to label ids.
    """
    out_dir: str = ''
    name: str = ''
    score_thr: float = 0.3
    train_ids: bool = False


class TaskData:
    """The data side of one task (subclass it and decorate with :func:`register_task_data`).

    Attributes:
        name (str): The task's name.
        required_meta (tuple[str]): Dataset metainfo keys the task needs (from the config or the annotation file).
        withheld_field (str): The data-sample field that carries the labels a split withheld (never trained on).
        metric (dict): Default metric config of the task in :class:`~mtssl_mm.evaluation.MultiTaskMetric`.
        main_key (tuple): ``(key, scale)``: the metric's entry in ``multitask/gmean`` and the factor that makes
            it a fraction in [0, 1].
        meta_keys (dict): The metric's metainfo ``{sub_key: dataset_key}`` (e.g. ``classes`` from ``seg_classes``).
    """

    name: str = ''
    required_meta: Tuple[str, ...] = ()
    withheld_field: str = ''
    metric: Dict[str, Any] = {}
    main_key: Tuple[str, float] = ('', 1.0)
    meta_keys: Dict[str, str] = {}

    # ---------------------------------------------------------------- MultiTaskDataset
    def check_metainfo(self, configured: dict, from_file: dict, ann_file: str) -> None:
        """Called before the file's metainfo is merged under the configured one; raise when they disagree."""

    def parse(self, raw: dict, info: dict, labeled: bool, dataset) -> None:
        """Check this task's part of the annotation entry ``raw`` and write it into the data info ``info``.

        Args:
            raw (dict): The entry of the annotation file's ``data_list``.
            info (dict): The data info being built (``img_path`` already joined with ``data_prefix['img']``).
            labeled (bool): Whether the annotation file labels the image for this task.
            dataset: The :class:`~mtssl_mm.datasets.MultiTaskDataset` (``ann_file``, ``data_prefix``,
                ``metainfo``), for paths and for errors that name the file.
        """

    # ---------------------------------------------------------------- LoadMultiTaskAnnotations
    def load(self, results: dict, loader, labeled: bool) -> None:
        """Load this task's labels into ``results`` when ``labeled`` (labeled or withheld), else its empty value
        (so that every sample of a batch carries the same keys).

        Args:
            loader: The :class:`~mtssl_mm.datasets.LoadMultiTaskAnnotations` (mmdet ``LoadAnnotations``'s loaders,
                ``ignore_index``).
        """

    # ---------------------------------------------------------------- PackMultiTaskInputs
    def take_withheld(self, results: dict) -> Dict[str, Any]:
        """Move this task's withheld labels out of the training keys of ``results`` (leaving there what an
        unlabeled sample has) and return ``{withheld_field: value}``."""
        raise NotImplementedError(f'{type(self).__name__}: withheld labels are not supported')

    def pack(self, results: dict, data_sample) -> None:
        """Set the fields of ``data_sample`` that mmdet's ``PackDetInputs`` does not pack (default: none)."""

    # ---------------------------------------------------------------- MultiTaskInferencer
    def check_prediction_meta(self, dataset_meta: dict, task, source: str, options: 'PredictionOptions') -> None:
        """Raise when ``dataset_meta`` lacks what :meth:`prediction_to_json` needs for the predictions of ``task``
        (the model side, e.g. as many class names as its head has classes); called once when the inferencer is
        built, naming ``source`` (where the metainfo comes from). Default: nothing needed."""

    def prediction_to_json(self, data_sample, dataset_meta: dict,
                           options: 'PredictionOptions') -> Optional[Dict[str, Any]]:
        """This task's prediction in ``data_sample`` as JSON-ready entries of ``tools/infer.py``'s per-image result;
        files it writes go under ``options.out_dir`` (none when it is ``''``), named ``options.name``. None
        (default): the task writes nothing (the inferencer says so once)."""
        return None

    # ---------------------------------------------------------------- MultiTaskMetric
    def metric_cfg(self, override: Optional[dict] = None) -> dict:
        """The metric config (a copy; ``override`` replaces it)."""
        return dict(override if override is not None else self.metric)

    def prepare_metric(self, metric, classwise: bool) -> None:
        """Adjust this task's metric once :class:`~mtssl_mm.evaluation.MultiTaskMetric` has built it (default:
        nothing), e.g. make its results carry what :meth:`classwise_report` reads.

        Args:
            metric (BaseMetric): The built metric (the task's default, or the configured ``task_metrics`` entry).
            classwise (bool): ``MultiTaskMetric(classwise=...)``: whether class-wise results will be reported.
        """

    def classwise_report(self, metric, task_results: list, values: dict) -> Optional[Dict[str, Any]]:
        """This task's per-class results, for :class:`~mtssl_mm.evaluation.MultiTaskMetric`'s class-wise report
        (logged keys and table, :func:`~mtssl_mm.evaluation.classwise.classwise_metrics`), or None (default):
        the task has no class-wise report (an info line says so).

        Args:
            metric (BaseMetric): The task's metric, after ``compute_metrics`` (its ``dataset_meta`` is the task's).
            task_results (list): The metric's per-sample results of the images labeled for the task.
            values (dict): What ``metric.compute_metrics(task_results)`` returned; entries that are only there for
                this report may be taken out (they are then not logged as ``'{task}/{key}'``).

        Returns:
            dict or None: ``name`` (str: the value's name in the keys, ``'AP'``), ``classes`` (all class names in
            label order), ``values`` (class name -> fraction in [0, 1], only classes that have a value),
            ``gt_counts`` (``(K,)`` ground truth per class: boxes, pixels), ``title`` (the table's first line),
            ``share_name`` (column title of the ground-truth shares, ``'% objects'``), optionally ``notes``
            (class name -> a note beside its value) and ``warning`` (logged at warning level before the table).
        """
        return None

    # offline analysis of saved predictions (mtssl_mm/evaluation/analysis.py, tools/analysis/): a task that
    # implements both hooks has a confusion matrix and per-image scores; images not labeled for it never reach them
    def confusion_matrix(self, pairs: Sequence[Tuple[dict, dict]], num_classes: int, **options):
        """This task's confusion matrix over ``pairs``, ``(data info, prediction)`` of images labeled for it.

        Args:
            pairs: ``(dataset.get_data_info(i), prediction dict of tools/test.py --out)``, all labeled for the task.
            num_classes (int): The task's classes K.
            **options: The task's own settings (detection: ``score_thr``, ``tp_iou_thr``).

        Returns:
            np.ndarray: Counts, rows ground truth, columns predictions (the shape is the task's).
        """
        raise NotImplementedError(f'{type(self).__name__}: task {self.name!r} has no confusion matrix')

    def image_score(self, info: dict, pred: dict, num_classes: int, score_thr: float = 0.0) -> float:
        """The score of one image labeled for this task (higher is better; NaN: the image is not scored), by which
        ``tools/analysis/analyze_results.py`` ranks the worst and the best images.

        Args:
            info (dict): The image's data info (``dataset.get_data_info(i)``).
            pred (dict): Its prediction (an entry of ``tools/test.py --out``).
            num_classes (int): The task's classes K.
            score_thr (float): Predictions scored below it are dropped, where the task's predictions have scores.
        """
        raise NotImplementedError(f'{type(self).__name__}: task {self.name!r} has no per-image score')
