"""Deployment: ONNX export of :class:`~mtssl_mm.models.MultiTaskModel` (``tools/deploy/export_onnx.py``).

Not imported by ``mtssl_mm`` itself: onnx, onnxruntime and onnxscript are optional (``pip install -e .[deploy]``),
and this package imports them only inside the functions that use them.
"""
from .onnx_export import (ATOL, INPUT_NAME, RTOL, MultiTaskOnnxWrapper, build_model, compare_with_onnxruntime,
                          export_metadata, export_model_config, export_onnx, format_stats, input_channel_order,
                          load_predictor_checkpoint, task_extras)

__all__ = [
    'ATOL', 'INPUT_NAME', 'RTOL', 'MultiTaskOnnxWrapper', 'build_model', 'compare_with_onnxruntime', 'export_metadata',
    'export_model_config', 'export_onnx', 'format_stats', 'input_channel_order', 'load_predictor_checkpoint',
    'task_extras'
]
