"""Export :class:`MultiTaskModel` to one ONNX graph and check it against PyTorch with onnxruntime.

The graph (one input, one output per raw head tensor, batch axis optionally dynamic)::

    img (B, 3, H, W) float32, 0..255, channel order as loaded by mmcv (BGR), H and W multiples of 32
      │  inside the graph: the data preprocessor's channel flip (bgr_to_rgb) and (x - mean) / std
      ▼
    backbone ─┬─► det: FPN ─► RetinaHead ─► det_cls_scores  (B, N, K)  logits (sigmoid -> scores)
              │                         └─► det_bbox_deltas (B, N, 4)  DeltaXYWH deltas w.r.t. the anchors
              └─► seg: DeepLabV3+ ───────► seg_logits      (B, K_seg, H/4, W/4)

``N = sum_l H_l * W_l * A`` over the head's levels, flattened as mmdet's ``predict_by_feat`` and mmdeploy do:
level by level, then row (y), column (x), anchor (a) -- anchor ``n`` is row ``n`` of
the detection task's ``export_arrays`` ``anchors`` (mmdet's ``grid_priors`` of every level, concatenated), written as
``OUT_det_anchors.npy``. Each task's outputs come from its ``export_outputs`` (named ``{task}_{key}``); a task
without it gives no output (a warning says so).
Nothing after the heads is in the graph: no sigmoid, no box decoding, no NMS, no upsampling of the logits.
mmdet's post-processing, per image: ``sigmoid`` of the scores; per level (rows ``det_level_rows``) the ``nms_pre``
best (anchor, class) pairs above ``score_thr``; boxes ``DeltaXYWHBBoxCoder.decode(anchors, deltas, max_shape=(h, w))``;
class-wise NMS; ``max_per_img``. Segmentation: bilinear upsampling (align_corners=False) to (H, W), argmax.
An image smaller than (H, W) is padded at the bottom and right with the mean colour (the preprocessor pads the
normalised image with 0); (h, w) is its size before padding, and the padded part of the masks is dropped.

The file's ``metadata_props`` (``mtssl_mm.*``, JSON values) record the input channel order, mean and std, the export
shape, the output names, the box coder, the head's ``test_cfg``, ``det_level_rows`` and, when the checkpoint's
``meta.dataset_meta`` has them, the class names.

The check (:func:`compare_with_onnxruntime`) runs the saved file with onnxruntime's CPU provider and the
wrapper with PyTorch on the same random input; an output passes when
``max|ort - torch| <= atol + rtol * max|torch|`` (defaults :data:`ATOL`, :data:`RTOL`).

onnx, onnxruntime and onnxscript (torch's default exporter) are optional: ``pip install -e .[deploy]``
(``requirements/deploy.txt``). This module imports them only inside the functions that need them.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

INPUT_NAME = 'img'
#: tolerance of the check: ``max|ort - torch| <= ATOL + RTOL * max|torch|`` per output
ATOL = 1e-5
RTOL = 1e-4
EXPORTERS = ('dynamo', 'torchscript')
#: the lowest opset torch 2.13's dynamo exporter writes; below it torch tries a version conversion, which fails on
#: this model (onnx's Resize/axes adapter) and then keeps opset 18 -- so a lower opset needs 'torchscript'
DYNAMO_MIN_OPSET = 18


def export_model_config(cfg):
    """The config of the model that predicts (:func:`~mtssl_mm.models.predictor_config`), as a copy whose
    ``data_preprocessor`` falls back to ``cfg.model.data_preprocessor`` when the predictor's node has none."""
    from ..models.predictor import predictor_config
    model_cfg = predictor_config(cfg).copy()
    if model_cfg.get('data_preprocessor') is None:
        model_cfg.data_preprocessor = cfg.model.get('data_preprocessor')
    if model_cfg.get('type') != 'MultiTaskModel':
        raise TypeError(f'export: the config\'s model is {model_cfg.get("type")!r}; only MultiTaskModel (or a '
                        'semi-supervised wrapper around it in model.detector) can be exported')
    return model_cfg


def load_predictor_checkpoint(model: nn.Module, checkpoint: str, branch: str = 'teacher') -> dict:
    """Load the predicting model of ``checkpoint`` into ``model`` strictly; return the checkpoint's ``meta``.

    A supervised checkpoint loads as it is; of a semi-supervised one (``student.*``/``teacher.*``) the ``branch``
    loads (:func:`~mtssl_mm.models.predictor_state_dict`, the EMA teacher by default).

    Raises:
        FileNotFoundError: ``checkpoint`` does not exist.
        KeyError: The file holds no state dict.
        CheckpointKeysError: Its keys or shapes do not fit the model (the message names the file and the keys).
    """
    from mmengine.runner.checkpoint import _load_checkpoint

    import mtssl_mm  # noqa: F401  (registers the package's loader for local files, see utils/checkpoint.py)
    from ..models.predictor import predictor_state_dict
    from ..models.state_dict_check import CheckpointKeysError
    from ..utils.checkpoint import tag_source
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} does not exist')
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise KeyError(f'{checkpoint}: not a state dict nor a dict with "state_dict"')
    state, _ = predictor_state_dict(state, checkpoint, branch)
    state = tag_source(state, checkpoint)  # the key check names the file
    try:
        model.load_state_dict(state, strict=True)
    except CheckpointKeysError:
        raise
    except RuntimeError as err:  # torch's own strict check: shape mismatches
        raise CheckpointKeysError(f'{checkpoint} does not fit the config\'s model: '
                                  f'{" ".join(str(err).split())[:500]}') from None
    return ckpt.get('meta', {}) if isinstance(ckpt.get('meta'), dict) else {}


def build_model(cfg, checkpoint: Optional[str] = None) -> Tuple[nn.Module, dict]:
    """Build the :class:`MultiTaskModel` of ``cfg`` on CPU in eval mode, with ``checkpoint``'s weights.

    The checkpoint may be supervised or semi-supervised; of a semi-supervised one the model that
    ``semi_test_cfg.predict_on`` names (the EMA teacher by default) is exported, as validation used it.

    Returns:
        tuple: ``(model, meta)``, ``meta`` the checkpoint's ``meta`` dict (``{}`` without a checkpoint).
    """
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mtssl_mm  # noqa: F401  (registers the components)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(export_model_config(cfg))
    meta = {}
    if checkpoint is not None:
        branch = (cfg.model.get('semi_test_cfg') or {}).get('predict_on', 'teacher')
        meta = load_predictor_checkpoint(model, checkpoint, branch)
    return model.eval(), meta


class MultiTaskOnnxWrapper(nn.Module):
    """``img -> raw head outputs`` of a :class:`MultiTaskModel`, with the data preprocessor's normalisation.

    Args:
        model (MultiTaskModel): The model (put in eval mode: BN running statistics, no dropout).
        mean, std (Sequence[float]): Per-channel normalisation of the data preprocessor, in its output channel
            order (``(x - mean) / std`` after the optional flip), 0..255 units.
        flip_channels (bool): Reverse the channel order first (the preprocessor's ``bgr_to_rgb`` or
            ``rgb_to_bgr``).
        size_divisor (int): H and W of the input must be multiples of this (the preprocessor's
            ``pad_size_divisor``, 32). Defaults to 32.

    Input: ``img`` (B, 3, H, W) float32 in 0..255, channels as loaded by mmcv (BGR), H and W multiples of the
    preprocessor's ``pad_size_divisor`` (32). Outputs (tuple, in this order; a task the model lacks is left
    out): ``det_cls_scores`` (B, N, K) logits, ``det_bbox_deltas`` (B, N, 4), ``seg_logits``
    (B, K_seg, H/4, W/4); see the module docstring.
    """

    def __init__(self,
                 model: nn.Module,
                 mean: Sequence[float],
                 std: Sequence[float],
                 flip_channels: bool,
                 size_divisor: int = 32) -> None:
        super().__init__()
        from mmengine.logging import print_log

        from ..tasks.base import implements, lacks_hook_message
        self.size_divisor = int(size_divisor)
        self.model = model.eval()
        self.flip_channels = bool(flip_channels)
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.tasks = []  # the exported task names, in model order
        for name, task in model.tasks.items():
            if implements(task, 'export_outputs'):
                self.tasks.append(name)
            else:
                print_log(
                    lacks_hook_message(task, 'export_outputs', 'it has no output in the graph'), 'current', level=30)
        if not self.tasks:
            raise ValueError(f'export: no task of the model ({list(model.tasks)}) has export_outputs()')
        self._names = None

    @classmethod
    def from_model(cls, model: nn.Module) -> 'MultiTaskOnnxWrapper':
        """Take mean, std and the channel flip from ``model.data_preprocessor`` (an mmengine ImgDataPreprocessor)."""
        pre = model.data_preprocessor
        if not getattr(pre, '_enable_normalize', False):
            raise ValueError('export: the data preprocessor does not normalise (no mean/std); nothing to put '
                             'in the graph')
        return cls(model,
                   pre.mean.flatten().tolist(),
                   pre.std.flatten().tolist(), pre._channel_conversion,
                   max(int(getattr(pre, 'pad_size_divisor', 1)), 1))

    def task_outputs(self, img: torch.Tensor) -> Dict[str, Dict[str, torch.Tensor]]:
        """task name -> its ``export_outputs`` (key -> tensor) for ``img`` (B, 3, H, W) 0..255."""
        return {name: self.model.tasks[name].export_outputs(out) for name, out in self.raw_outputs(img).items()}

    def raw_outputs(self, img: torch.Tensor) -> dict:
        """task name -> the task's raw head outputs for ``img`` (B, 3, H, W) 0..255, normalised as in the graph."""
        x = img.flip(1) if self.flip_channels else img
        feats = self.model.extract_feat((x - self.mean) / self.std)
        return {name: self.model.tasks[name](feats) for name in self.tasks}

    @property
    def output_names(self) -> List[str]:
        """``{task}_{key}`` for every exported task's outputs, in order (found with one small forward pass)."""
        if self._names is None:
            side = 4 * self.size_divisor
            with torch.no_grad():
                outs = self.task_outputs(torch.zeros(1, 3, side, side, device=self.mean.device))
            self._names = [f'{name}_{key}' for name, o in outs.items() for key in o]
        return list(self._names)

    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(t for o in self.task_outputs(img).values() for t in o.values())


def task_extras(wrapper: MultiTaskOnnxWrapper, shape: Tuple[int, int],
                dataset_meta: dict) -> Tuple[Dict[str, object], Dict[str, np.ndarray]]:
    """Every exported task's ``export_metadata`` and ``export_arrays`` for an input of ``shape`` (H, W).

    Returns:
        tuple: ``({f'{task}_{key}': JSON-ready value}, {f'{task}_{key}': array})``.
    """
    with torch.no_grad():
        raw = wrapper.raw_outputs(torch.zeros(1, 3, *shape, device=wrapper.mean.device))
    metadata, arrays = {}, {}
    for name, outs in raw.items():
        task = wrapper.model.tasks[name]
        metadata.update({f'{name}_{k}': v for k, v in task.export_metadata(outs, dataset_meta).items()})
        arrays.update({f'{name}_{k}': v for k, v in task.export_arrays(outs).items()})
    return metadata, arrays


def check_shape(shape: Sequence[int], divisor: int = 32) -> Tuple[int, int]:
    """``shape`` (H, W) as ints, each a positive multiple of ``divisor`` (the preprocessor pads to it)."""
    if len(shape) != 2 or any(int(s) <= 0 or int(s) % divisor for s in shape):
        raise ValueError(f'export shape must be H W, positive multiples of {divisor} (the data preprocessor\'s '
                         f'pad_size_divisor), got {list(shape)}; pad the image up to the next multiple')
    return int(shape[0]), int(shape[1])


def export_onnx(wrapper: MultiTaskOnnxWrapper,
                out_file: str,
                shape: Tuple[int, int],
                batch_size: int = 1,
                opset: Optional[int] = None,
                dynamic_batch: bool = False,
                exporter: str = 'dynamo',
                metadata: Optional[Dict[str, str]] = None) -> str:
    """Write ``wrapper`` to ``out_file`` as one self-contained ONNX file (weights inside).

    Args:
        wrapper: The model to export.
        out_file: Path of the ``.onnx`` file.
        shape: Input (H, W), multiples of ``wrapper.size_divisor``; fixed in the graph.
        batch_size: Batch of the example input (the fixed batch unless ``dynamic_batch``).
        opset: ONNX opset; ``None`` takes torch's default for the exporter (20 for dynamo in torch 2.13). The dynamo
            exporter needs >= :data:`DYNAMO_MIN_OPSET`; 'torchscript' wrote 11, 13 and 17 for the tiny model.
        dynamic_batch: Make axis 0 of the input and of every output symbolic (``batch``).
        exporter: ``'dynamo'`` (``torch.export``-based, torch's default and recommended path; needs onnxscript)
            or ``'torchscript'`` (the legacy tracer, ``dynamo=False``, deprecated since torch 2.9).
        metadata: Strings stored in the model's ``metadata_props``.

    Returns:
        str: ``out_file``.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f'exporter must be one of {EXPORTERS}, got {exporter!r}')
    check_opset(opset, exporter)
    import onnx  # noqa: F401  (a clear ImportError before a long trace when the extra is missing)
    h, w = check_shape(shape, wrapper.size_divisor)
    example = torch.rand(batch_size, 3, h, w, generator=torch.Generator().manual_seed(0)) * 255
    names = wrapper.output_names
    kwargs = dict(input_names=[INPUT_NAME], output_names=names, opset_version=opset)
    wrapper.eval()
    with torch.no_grad():
        if exporter == 'dynamo':
            import onnxscript  # noqa: F401
            dynamic = {INPUT_NAME: {0: torch.export.Dim('batch', min=1)}} if dynamic_batch else None
            torch.onnx.export(
                wrapper, (example, ),
                out_file,
                dynamo=True,
                dynamic_shapes=dynamic,
                external_data=False,
                verbose=False,
                **kwargs)
        else:
            axes = {n: {0: 'batch'} for n in [INPUT_NAME] + names} if dynamic_batch else None
            torch.onnx.export(
                wrapper, (example, ), out_file, dynamo=False, dynamic_axes=axes, do_constant_folding=True, **kwargs)
    written = onnx_opset(out_file)
    if opset is not None and written != opset:
        raise RuntimeError(f'{out_file}: asked for opset {opset}, the {exporter} exporter wrote opset {written}')
    if metadata:
        add_metadata(out_file, metadata)
    return out_file


def check_opset(opset: Optional[int], exporter: str) -> None:
    """Refuse an opset the exporter would not write (see :data:`DYNAMO_MIN_OPSET`)."""
    if opset is not None and exporter == 'dynamo' and opset < DYNAMO_MIN_OPSET:
        raise ValueError(f'--opset {opset}: the dynamo exporter writes opset >= {DYNAMO_MIN_OPSET} (torch\'s '
                         'conversion to a lower opset fails on this model); use --exporter torchscript for it')


def onnx_opset(onnx_file: str) -> int:
    """The default-domain (ai.onnx) opset of a saved model."""
    import onnx
    model = onnx.load(onnx_file, load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ('', 'ai.onnx'))


def add_metadata(onnx_file: str, metadata: Dict[str, str]) -> None:
    """Store ``metadata`` in the file's ``metadata_props`` (replacing keys that exist)."""
    import onnx
    model = onnx.load(onnx_file)
    props = {p.key: p.value for p in model.metadata_props}
    props.update({str(k): str(v) for k, v in metadata.items()})
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, onnx_file)


def input_channel_order(cfg) -> str:
    """The channel order the graph's input must have: ``'bgr'`` for a preprocessor with ``bgr_to_rgb`` (our configs;
    mmcv loads BGR), ``'rgb'`` with ``rgb_to_bgr``, else ``'unchanged'`` (as the pipeline loads it, mean/std order)."""
    pre = export_model_config(cfg).get('data_preprocessor') or {}
    if pre.get('bgr_to_rgb'):
        return 'bgr'
    if pre.get('rgb_to_bgr'):
        return 'rgb'
    return 'unchanged'


def export_metadata(wrapper: MultiTaskOnnxWrapper,
                    shape: Tuple[int, int],
                    meta: dict,
                    input_order: str = 'bgr',
                    task_metadata: Optional[Dict[str, object]] = None) -> Dict[str, str]:
    """What a consumer of the file needs to know, as ``metadata_props`` strings (JSON values; plain strings as
    they are).

    Args:
        wrapper: The exported model.
        shape: The export (H, W).
        meta: The checkpoint's ``meta`` (its ``dataset_meta`` gives the class names).
        input_order: See :func:`input_channel_order`.
        task_metadata: The tasks' part, ``{f'{task}_{key}': value}`` (:func:`task_extras`); computed if None.
    """
    if task_metadata is None:
        task_metadata = task_extras(wrapper, shape, meta.get('dataset_meta') or {})[0]
    data = {
        'mtssl_mm.input': f'{INPUT_NAME}: (B, 3, H, W) float32 0..255, channel order {input_order}; the graph '
        f'{"flips the channels and " if wrapper.flip_channels else ""}subtracts mean, divides by std',
        'mtssl_mm.input_channel_order': input_order,
        'mtssl_mm.mean': json.dumps(wrapper.mean.flatten().tolist()),
        'mtssl_mm.std': json.dumps(wrapper.std.flatten().tolist()),
        'mtssl_mm.export_shape': json.dumps(list(shape)),
        'mtssl_mm.outputs': json.dumps(wrapper.output_names),
    }
    for key, value in task_metadata.items():
        data[f'mtssl_mm.{key}'] = value if isinstance(value, str) else json.dumps(value)
    return data


def compare_with_onnxruntime(wrapper: MultiTaskOnnxWrapper,
                             onnx_file: str,
                             inputs: torch.Tensor,
                             atol: float = ATOL,
                             rtol: float = RTOL) -> List[dict]:
    """Run ``onnx_file`` (onnxruntime, CPU) and ``wrapper`` (PyTorch) on ``inputs`` and compare every output.

    Args:
        inputs: (B, 3, H, W) float32 0..255, the graph's input.
        atol, rtol: An output passes when ``max|ort - torch| <= atol + rtol * max|torch|``.

    Returns:
        list[dict]: Per output ``name``, ``shape`` (onnxruntime's), ``max_abs`` (max |ort - torch|),
        ``scale`` (max |torch|), ``rel`` (max_abs / scale), ``ok`` (bool; False also on a shape mismatch).
    """
    import onnxruntime as ort
    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    got_names = [o.name for o in session.get_outputs()]
    if got_names != wrapper.output_names:
        raise ValueError(f'{onnx_file}: outputs {got_names}, expected {wrapper.output_names}')
    ort_outs = session.run(None, {INPUT_NAME: inputs.numpy().astype(np.float32)})
    with torch.no_grad():
        ref_outs = [t.numpy() for t in wrapper.eval()(inputs)]
    stats = []
    for name, got, ref in zip(got_names, ort_outs, ref_outs):
        if got.shape != ref.shape:
            stats.append(
                dict(
                    name=name,
                    shape=tuple(got.shape),
                    ref_shape=tuple(ref.shape),
                    max_abs=float('inf'),
                    scale=float(np.abs(ref).max()),
                    rel=float('inf'),
                    ok=False))
            continue
        max_abs = float(np.abs(got.astype(np.float64) - ref).max())
        scale = float(np.abs(ref).max())
        stats.append(
            dict(
                name=name,
                shape=tuple(got.shape),
                max_abs=max_abs,
                scale=scale,
                rel=max_abs / scale if scale > 0 else float('inf') if max_abs > 0 else 0.0,
                ok=bool(max_abs <= atol + rtol * scale)))
    return stats


def format_stats(stats: List[dict], atol: float, rtol: float) -> str:
    """One line per output, then the criterion."""
    lines = [
        f'{s["name"]:<16} shape {str(s["shape"]):<20} max|ort-torch| {s["max_abs"]:.3e}  '
        f'max|torch| {s["scale"]:.3e}  relative {s["rel"]:.3e}  {"ok" if s["ok"] else "FAIL"}' +
        (f' (PyTorch shape {s["ref_shape"]})' if 'ref_shape' in s else '') for s in stats
    ]
    lines.append(f'criterion: max|ort - torch| <= {atol:g} + {rtol:g} * max|torch| per output')
    return '\n'.join(lines)
