"""Run a trained multi-task model on images that have no labels."""
import copy
import functools
import json
import os
import os.path as osp
import uuid
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch.nn as nn
from mmcv.transforms import LoadImageFromFile
from mmengine.config import ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.registry import FUNCTIONS, VISUALIZERS, init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint_to_model
from mmengine.utils import import_modules_from_strings
from rich.progress import MofNCompleteColumn, Progress

from ..models.predictor import predictor_of, set_predict_tasks
from ..tasks.task_data import TASK_DATA, PredictionOptions
from .inputs import collect_images, output_names
from .pipeline import inference_pipeline

InputType = Union[str, np.ndarray]


class UnreadableImageWarning(UserWarning):
    """An input image that cannot be read or decoded was skipped (the message names the file)."""


class MultiTaskInferencer(BaseInferencer):
    """Boxes and segmentation of a multi-task model on any images, as mmdet's ``DetInferencer``.

    Works with supervised (:class:`MultiTaskModel`) and semi-supervised (:class:`MultiTaskSemiSupervised`,
    which predicts with its EMA teacher) configs and their checkpoints. Images need no label files: the
    pipeline is the config's test pipeline without its annotation loader (:func:`inference_pipeline`).

    Per image, with ``out_dir``: ``preds/<name>.json`` (boxes and image info, see :meth:`pred2dict`),
    ``seg/<name>.png`` (single-channel uint8, the image's size: Cityscapes label ids where the metainfo has
    ``seg_label_ids``, else the class indices / trainIds) and ``vis/<name>.jpg`` (boxes and segmentation drawn by
    the config's visualizer, ``MultiTaskLocalVisualizer``). ``<name>`` is the image's file stem, made distinct
    where stems collide (:func:`output_names`).

    Class names and palettes: the checkpoint's ``meta.dataset_meta`` where it has them, else the config's
    ``test_dataloader.dataset.metainfo``.

    Example::

        >>> from mtssl_mm.apis import MultiTaskInferencer
        >>> inferencer = MultiTaskInferencer('configs/cityscapes/supervised_partial.py', 'best.pth')
        >>> result = inferencer('my_images/', out_dir='out')   # files, folders, globs, BGR arrays
        >>> result['predictions'][0]['boxes'][0]
        {'bbox': [x, y, w, h], 'category': 'car', 'category_id': 2, 'score': 0.91}

    Args:
        model (str | Config | dict): Config file or config.
        weights (str, optional): Checkpoint file. Without it the model keeps its initial weights (a warning).
        device (str, optional): ``'cpu'``, ``'cuda'``, ``'cuda:1'``; default: CUDA if available.
        tasks (Sequence[str], optional): Predict only these tasks (``['det']``); default all of the model's.
        score_thr (float): Boxes scoring below it are left out of the JSON and the picture. Defaults to 0.3.
        train_ids (bool): Write the class indices (trainIds) to the PNGs even where the metainfo maps them to
            label ids. Defaults to False.
        scope (str): The registry scope. Defaults to ``'mmdet'``.
        show_progress (bool): A progress bar over the images. Defaults to True.
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {'return_vis', 'no_save_vis', 'img_out_dir'}
    postprocess_kwargs: set = {'return_datasamples', 'no_save_pred', 'pred_out_dir'}

    def __init__(self,
                 model: Union[str, dict, None] = None,
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 tasks: Optional[Sequence[str]] = None,
                 score_thr: float = 0.3,
                 train_ids: bool = False,
                 scope: str = 'mmdet',
                 show_progress: bool = True) -> None:
        if isinstance(model, str) and not osp.isfile(model):
            raise FileNotFoundError(f'config file {model} does not exist')
        if weights is not None and not osp.isfile(weights):
            raise FileNotFoundError(f'checkpoint {weights} does not exist')
        self.source = model if isinstance(model, str) else getattr(model, 'filename', None) or 'the config'
        self.weights = weights
        self.tasks = tasks
        self.score_thr = float(score_thr)
        self.train_ids = train_ids
        self.num_arrays = 0  # names of array inputs: array_00000000, ...
        self._silent = set()  # tasks without prediction_to_json, warned about once
        init_default_scope(scope)
        super().__init__(model=model, weights=weights, device=device, scope=scope, show_progress=show_progress)

    # ------------------------------------------------------------------------------------------- building
    def _init_model(self, cfg, weights, device='cpu') -> nn.Module:
        if cfg.get('custom_imports'):
            import_modules_from_strings(**cfg.custom_imports)
        model = super()._init_model(cfg, weights, device)
        model = revert_sync_batchnorm(model)
        if self.tasks is not None:
            set_predict_tasks(model, self.tasks)
        predictor = predictor_of(model)
        self.predict_tasks = tuple(predictor.predict_tasks)
        self._check_meta(predictor)
        return model

    def _load_weights_to_model(self, model: nn.Module, checkpoint: Optional[dict], cfg) -> None:
        """Load the weights (every parameter must match) and the metainfo: config's, then checkpoint's."""
        if checkpoint is None:
            warnings.warn('MultiTaskInferencer: no checkpoint given, the model predicts with its initial weights')
        else:
            try:
                _load_checkpoint_to_model(model, checkpoint, strict=True)
            except RuntimeError as e:
                raise RuntimeError(f'checkpoint {self.weights} does not fit the model of {self.source} (use the '
                                   f'config it was trained with): {e}') from None
        meta = dict(cfg.get('test_dataloader', {}).get('dataset', {}).get('metainfo') or {})
        ckpt_meta = (checkpoint or {}).get('meta', {}).get('dataset_meta') or {}
        meta.update({k.lower(): v for k, v in ckpt_meta.items()})
        model.dataset_meta = meta
        self.dataset_meta = meta

    def _check_meta(self, predictor: nn.Module) -> None:
        """What each predicted task's data side needs to write its predictions (class names, as many as the heads'
        classes): ``TaskData.check_prediction_meta``."""
        source = f'metainfo of {self.weights or "no checkpoint"} / {self.source}'
        options = self._options()
        for task in self.predict_tasks:
            TASK_DATA[task].check_prediction_meta(self.dataset_meta, predictor.tasks[task], source, options)

    def _options(self, out_dir: str = '', name: str = '') -> PredictionOptions:
        return PredictionOptions(out_dir=out_dir, name=name, score_thr=self.score_thr, train_ids=self.train_ids)

    def _init_pipeline(self, cfg) -> Compose:
        pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline')
        if pipeline is None:
            raise KeyError(f'{self.source}: no test_dataloader.dataset.pipeline')
        return Compose(inference_pipeline(pipeline, source=f'{self.source}: test_dataloader.dataset.pipeline'))

    def _init_collate(self, cfg):
        """The test loader's ``collate_fn`` if the config names one, else mmengine's ``pseudo_collate``."""
        collate = cfg.get('test_dataloader', {}).get('collate_fn')
        if collate is None:
            return pseudo_collate
        collate = dict(collate)  # as mmengine's Runner: dict(type=name or function, **kwargs)
        kind = collate.pop('type')
        return functools.partial(FUNCTIONS.get(kind) if isinstance(kind, str) else kind, **collate)

    def _init_visualizer(self, cfg):
        """The config's visualizer (``MultiTaskLocalVisualizer`` by default), drawing only to the returned image."""
        vis_cfg = copy.deepcopy(cfg.get('visualizer') or ConfigDict(type='MultiTaskLocalVisualizer'))
        vis_cfg.pop('vis_backends', None)
        vis_cfg.pop('save_dir', None)
        vis_cfg['name'] = f'multitask_inferencer_{uuid.uuid4().hex}'  # one global instance per name
        visualizer = VISUALIZERS.build(vis_cfg)
        visualizer.dataset_meta = self.dataset_meta
        return visualizer

    # ------------------------------------------------------------------------------------------- running
    def _inputs_to_list(self, inputs) -> List[InputType]:
        """Paths (files, folders, globs: :func:`collect_images`) and arrays, flattened into one list."""
        if isinstance(inputs, (str, os.PathLike, np.ndarray)):
            inputs = [inputs]
        items = []
        for item in inputs:
            if isinstance(item, np.ndarray):
                items.append(item)
            else:
                items.extend(collect_images([os.fspath(item)]))
        return items

    def _names(self, items: Sequence[InputType]) -> List[str]:
        paths = [i for i in items if not isinstance(i, np.ndarray)]
        path_names = iter(output_names(paths))
        names = []
        for item in items:
            if isinstance(item, np.ndarray):
                names.append(f'array_{self.num_arrays:08d}')
                self.num_arrays += 1
            else:
                names.append(next(path_names))
        return names

    def __call__(self,
                 inputs: Union[InputType, Sequence[InputType]],
                 batch_size: int = 1,
                 out_dir: str = '',
                 no_save_vis: bool = False,
                 no_save_pred: bool = False,
                 return_vis: bool = False,
                 return_datasamples: bool = False) -> Dict[str, list]:
        """Predict on every input image.

        Args:
            inputs: A path (image file, folder searched recursively, glob pattern), a BGR ``np.ndarray``
                (H, W, 3) uint8, or a list of them.
            batch_size (int): Images per forward pass.
            out_dir (str): Where to write ``preds/``, ``seg/``, ``vis/``; ``''`` writes nothing.
            no_save_vis (bool): Do not draw ``vis/``.
            no_save_pred (bool): Do not write ``preds/`` and ``seg/``.
            return_vis (bool): Also return the drawn pictures (RGB arrays).
            return_datasamples (bool): Return the model's ``DetDataSample`` instead of dicts.

        Returns:
            dict: ``predictions`` (one per image read, in input order: :meth:`pred2dict`'s dict or the data
            sample), ``visualization`` (the pictures if ``return_vis``, else empty) and ``skipped`` (the paths of
            the images that could not be read, each with a warning: :meth:`_read_images`; no output for them).
        """
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        items = self._inputs_to_list(inputs)
        names = self._names(items)
        if out_dir and not no_save_pred:
            os.makedirs(osp.join(out_dir, 'preds'), exist_ok=True)  # tasks make their own folders as they write
        if out_dir and not no_save_vis:
            os.makedirs(osp.join(out_dir, 'vis'), exist_ok=True)
        results = dict(predictions=[], visualization=[], skipped=[])
        with Progress(
                *Progress.get_default_columns(), MofNCompleteColumn(), disable=not self.show_progress) as progress:
            bar = progress.add_task('Inference', total=len(items))
            for start in range(0, len(items), batch_size):
                chunk, chunk_names = items[start:start + batch_size], names[start:start + batch_size]
                size = len(chunk)
                chunk, chunk_names, paths = self._read_images(chunk, chunk_names, results['skipped'])
                if not chunk:
                    progress.advance(bar, size)
                    continue
                data = self.collate_fn([self.pipeline(self._to_pipeline_input(i)) for i in chunk])
                preds = self.forward(data)
                for pred, path in zip(preds, paths):  # read here, the pipeline got the array
                    pred.set_metainfo(dict(img_path=path))
                vis = self.visualize(
                    chunk,
                    preds,
                    return_vis=return_vis,
                    no_save_vis=no_save_vis,
                    img_out_dir=out_dir,
                    names=chunk_names)
                out = self.postprocess(
                    preds,
                    vis,
                    return_datasamples=return_datasamples,
                    no_save_pred=no_save_pred,
                    pred_out_dir=out_dir,
                    names=chunk_names)
                results['predictions'].extend(out['predictions'])
                if return_vis:
                    results['visualization'].extend(out['visualization'])
                progress.advance(bar, size)
        return results

    def _read_images(self, chunk: Sequence[InputType], names: Sequence[str],
                     skipped: List[str]) -> Tuple[List[InputType], List[str], List[Optional[str]]]:
        """Read each path of ``chunk`` once, as the config's image loader reads it (its ``backend_args``,
        ``imdecode_backend``, ``color_type``), for the pipeline and the picture alike.

        A file that cannot be read or decoded (empty, truncated, not an image: the loader raises, or the decoder
        gives None, which mmcv's ``LoadImageFromFile`` would stop on with an ``AssertionError``) is left out with an
        :class:`UnreadableImageWarning` naming it, and appended to ``skipped``.

        Returns:
            tuple: The readable inputs (BGR arrays; arrays given as inputs stay as they are), their names and their
            paths (None for array inputs).
        """
        loader = next((t.from_file for t in self.pipeline.transforms if hasattr(t, 'from_file')), None)
        loader = loader or LoadImageFromFile()
        kept, kept_names, paths = [], [], []
        for item, name in zip(chunk, names):
            path = None
            if not isinstance(item, np.ndarray):
                path, item, reason = item, None, 'the decoder gives no image: truncated or not an image'
                if osp.isfile(path) and osp.getsize(path) == 0:
                    reason = 'the file is empty'
                else:
                    try:
                        item = (loader.transform(dict(img_path=path)) or {}).get('img')
                    except AssertionError:  # mmcv's "failed to load image": the decoder gave None
                        pass
                    except Exception as e:  # noqa: BLE001 - whatever the file backend or the decoder raises on it
                        reason = ' '.join(f'{type(e).__name__}: {e}'.split())
                if item is None:
                    warnings.warn(f'{path}: cannot read the image ({reason}); skipped', UnreadableImageWarning)
                    skipped.append(path)
                    continue
            kept.append(item)
            kept_names.append(name)
            paths.append(path)
        return kept, kept_names, paths

    @staticmethod
    def _to_pipeline_input(item: InputType) -> dict:
        return dict(img=item) if isinstance(item, np.ndarray) else dict(img_path=item)

    def _kept_boxes(self, pred):
        """``pred`` with only the boxes scoring at least ``score_thr``."""
        if 'pred_instances' not in pred:
            return pred
        pred = pred.clone()
        pred.pred_instances = pred.pred_instances[pred.pred_instances.scores >= self.score_thr]
        return pred

    def visualize(self,
                  inputs: list,
                  preds: list,
                  return_vis: bool = False,
                  no_save_vis: bool = False,
                  img_out_dir: str = '',
                  names: Optional[Sequence[str]] = None,
                  **kwargs) -> Optional[list]:
        """Draw boxes (score >= ``score_thr``) and segmentation over each original image.

        Returns:
            list[np.ndarray] | None: (H, W, 3) RGB uint8 pictures, or None if nothing is drawn.
        """
        save = bool(img_out_dir) and not no_save_vis
        if not (save or return_vis):
            return None
        pictures = []
        for item, pred, name in zip(inputs, preds, names):
            image = mmcv.imread(item, channel_order='rgb') if isinstance(item, str) else item[..., ::-1]
            out_file = osp.join(img_out_dir, 'vis', f'{name}.jpg') if save else None
            # boxes were filtered above: draw every one left (DetLocalVisualizer keeps scores > pred_score_thr)
            self.visualizer.add_datasample(
                name,
                np.ascontiguousarray(image),
                self._kept_boxes(pred),
                draw_gt=False,
                draw_pred=True,
                pred_score_thr=-1.0,
                out_file=out_file)
            pictures.append(self.visualizer.get_image())
        return pictures

    def postprocess(self,
                    preds: list,
                    visualization: Optional[list] = None,
                    return_datasamples: bool = False,
                    no_save_pred: bool = False,
                    pred_out_dir: str = '',
                    names: Optional[Sequence[str]] = None,
                    **kwargs) -> dict:
        out_dir = '' if no_save_pred else pred_out_dir
        predictions = preds if return_datasamples else [
            self.pred2dict(pred, name, out_dir) for pred, name in zip(preds, names)
        ]
        if return_datasamples and out_dir:
            for pred, name in zip(preds, names):
                self.pred2dict(pred, name, out_dir)
        return dict(predictions=predictions, visualization=visualization)

    def pred2dict(self, pred, name: str, out_dir: str = '') -> dict:
        """One image's prediction as a dict, written to ``out_dir`` if given.

        Returns:
            dict: ``img_path`` (None for an array), ``height``, ``width`` (original image, pixels), ``tasks``
            (the predicted ones) and what each task's data side makes of its prediction
            (``TaskData.prediction_to_json``): detection ``boxes`` (COCO ``[x, y, w, h]`` in original image pixels,
            score >= ``score_thr``, best first); segmentation ``seg_ids`` (``'seg_label_ids'`` or
            ``'class_indices'``) and ``seg`` (the PNG's path relative to ``out_dir``) or, without ``out_dir``,
            ``sem_seg`` ((H, W) uint8 array, not JSON); attributes ``attributes`` (label and score per attribute).
        """
        height, width = pred.ori_shape[:2]
        result = dict(
            img_path=pred.metainfo.get('img_path'),
            height=int(height),
            width=int(width),
            tasks=list(self.predict_tasks))
        options = self._options(out_dir, name)
        for task in self.predict_tasks:
            entries = TASK_DATA[task].prediction_to_json(pred, self.dataset_meta, options)
            if entries is None and task not in self._silent:
                self._silent.add(task)
                warnings.warn(f'MultiTaskInferencer: task {task!r} ({type(TASK_DATA[task]).__name__}) has no '
                              'prediction_to_json(): its predictions are not written')
            result.update(entries or {})
        if out_dir:
            with open(osp.join(out_dir, 'preds', f'{name}.json'), 'w') as f:
                json.dump(result, f, indent=1)
        return result
