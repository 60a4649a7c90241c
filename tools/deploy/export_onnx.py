"""Export a trained MultiTaskModel to ONNX (one graph: raw detection head outputs and segmentation logits).

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--shape H W] [--opset N] [--dynamic-batch]
        [--no-check] [--exporter dynamo|torchscript] [--atol A] [--rtol R] [--cfg-options k=v ...]

Input ``img``: (B, 3, H, W) float32 0..255, channels as mmcv loads them (BGR); the graph flips them and normalises
with the config's data_preprocessor mean/std. Outputs: ``det_cls_scores`` (B, N, K) logits, ``det_bbox_deltas``
(B, N, 4) and ``seg_logits`` (B, K_seg, H/4, W/4) -- ``{task}_{output}`` for every task with ``export_outputs``
(``attr_{attribute}_logits`` (B, K_a) for image attributes); arrays a task needs beside the graph are written as
``OUT_{task}_{key}.npy``: ``OUT_det_anchors.npy``, (N, 4) x1 y1 x2 y2 in input pixels. See
``mtssl_mm/deploy/onnx_export.py``.

Unless ``--no-check``, onnxruntime runs the file on a random input and its outputs are compared with PyTorch's:
exit status 1 when an output's ``max|ort - torch|`` exceeds ``atol + rtol * max|torch|``.
Needs the ``deploy`` extra: ``pip install -e .[deploy]`` (onnx, onnxruntime, onnxscript).
"""
import argparse
import os
import os.path as osp
import sys
import time

import numpy as np
import torch
from mmengine.config import Config, DictAction

from mtssl_mm.deploy import onnx_export as ox
from mtssl_mm.models import CheckpointKeysError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export a multi-task model to ONNX and check it with onnxruntime')
    parser.add_argument('config', help='config file (supervised, or semi-supervised: its model.detector is exported)')
    parser.add_argument(
        'checkpoint',
        help='checkpoint of the config\'s model (of a semi-supervised run: its EMA '
        'teacher is exported, or the student with semi_test_cfg.predict_on=student)')
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        default=[1024, 2048],
        help='input height and width, multiples of 32, fixed in the graph (default: 1024 2048, '
        'Cityscapes at the full resolution the test pipeline keeps; BDD100K 720x1280 padded: 736 1280)')
    parser.add_argument(
        '--opset',
        type=int,
        default=None,
        help="ONNX opset (default: torch's for the exporter, 20 for dynamo in torch 2.13); "
        f'the dynamo exporter needs >= {ox.DYNAMO_MIN_OPSET}, use --exporter torchscript below')
    parser.add_argument('--dynamic-batch', action='store_true', help='make the batch axis dynamic')
    parser.add_argument('--no-check', action='store_true', help='skip the onnxruntime-vs-PyTorch comparison')
    parser.add_argument(
        '--exporter',
        choices=ox.EXPORTERS,
        default='dynamo',
        help="'dynamo' (torch.export-based, torch's default; needs onnxscript) or 'torchscript' "
        '(legacy tracer, deprecated since torch 2.9)')
    parser.add_argument('--atol', type=float, default=ox.ATOL, help=f'absolute tolerance (default {ox.ATOL:g})')
    parser.add_argument(
        '--rtol', type=float, default=ox.RTOL, help=f'tolerance relative to max|PyTorch output| (default {ox.RTOL:g})')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override settings of the config, key=value pairs')
    return parser, parser.parse_args(argv)


def prepare(args):
    """Check the arguments, build the model, load the checkpoint: ``(model, meta, wrapper, shape, input_order)``."""
    for path, what in ((args.config, 'config file'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} {path} does not exist')
    if not args.out.endswith('.onnx'):
        raise ValueError(f'OUT must be a .onnx file, got {args.out}')
    import onnx  # noqa: F401  (the optional packages: fail here, not after the export)
    if args.exporter == 'dynamo':
        import onnxscript  # noqa: F401
    if not args.no_check:
        import onnxruntime  # noqa: F401
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    model, meta = ox.build_model(cfg, args.checkpoint)
    wrapper = ox.MultiTaskOnnxWrapper.from_model(model)
    shape = ox.check_shape(args.shape, wrapper.size_divisor)
    ox.check_opset(args.opset, args.exporter)
    return model, meta, wrapper, shape, ox.input_channel_order(cfg)


def run(args, model, meta, wrapper, shape, input_order) -> int:
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    task_metadata, arrays = ox.task_extras(wrapper, shape, meta.get('dataset_meta') or {})
    start = time.perf_counter()
    # a batch of 2 in the example keeps torch.export from specialising the dynamic axis to 1
    ox.export_onnx(
        wrapper,
        args.out,
        shape,
        batch_size=2 if args.dynamic_batch else 1,
        opset=args.opset,
        dynamic_batch=args.dynamic_batch,
        exporter=args.exporter,
        metadata=ox.export_metadata(wrapper, shape, meta, input_order, task_metadata))
    print(f'exported {args.out} ({osp.getsize(args.out) / 2**20:.1f} MiB, {args.exporter} exporter, '
          f'opset {ox.onnx_opset(args.out)}, {time.perf_counter() - start:.1f} s): input {ox.INPUT_NAME} '
          f'({"B" if args.dynamic_batch else 1}, 3, {shape[0]}, {shape[1]}), outputs {wrapper.output_names}')
    for key, array in arrays.items():  # e.g. the detection anchors, one row per output row
        array_file = f'{args.out[:-len(".onnx")]}_{key}.npy'
        np.save(array_file, array)
        print(f'{key} {array_file}: {array.shape} {array.dtype}')
    if args.no_check:
        return 0

    batch = 3 if args.dynamic_batch else 1  # another batch than the export example's when it is dynamic
    inputs = torch.rand(batch, 3, *shape, generator=torch.Generator().manual_seed(1)) * 255
    stats = ox.compare_with_onnxruntime(wrapper, args.out, inputs, atol=args.atol, rtol=args.rtol)
    print(f'onnxruntime vs PyTorch on a random (0..255) input of batch {batch}:')
    print(ox.format_stats(stats, args.atol, args.rtol))
    if not all(s['ok'] for s in stats):
        print('check FAILED: onnxruntime and PyTorch disagree beyond the tolerance', file=sys.stderr)
        return 1
    print('check passed')
    return 0


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    try:  # bad input gives one line; an error inside the export keeps its traceback
        prepared = prepare(args)
    except (FileNotFoundError, KeyError, TypeError, ValueError, ImportError, CheckpointKeysError) as err:
        message = err.args[0] if err.args and isinstance(err.args[0], str) else str(err)
        if isinstance(err, ImportError):
            message += ' (install the deploy extra: pip install -e .[deploy], or -r requirements/deploy.txt)'
        parser.exit(2, f'{parser.prog}: error: {message}\n')
    return run(args, *prepared)


if __name__ == '__main__':
    sys.exit(main())
