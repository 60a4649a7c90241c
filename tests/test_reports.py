"""Class-wise reports reach mmengine's outputs: vis_data/scalars.json and the log's tables (a real Runner.val())."""
import glob
import json
import os.path as osp

from mmengine.runner import Runner

from fixtures import tiny_cfg


def test_validation_writes_classwise_scalars_and_tables(partial_root, tmp_path):
    cfg = tiny_cfg(partial_root, str(tmp_path))
    cfg.default_hooks.checkpoint = None  # save_best needs a training run (before_train sets its file backend)
    runner = Runner.from_cfg(cfg)
    metrics = runner.val()
    for key in ('det/AP_num_classes', 'seg/IoU_class_mean', 'seg/IoU_class_std', 'seg/IoU/road'):
        assert key in metrics, sorted(metrics)
    # LoggerHook -> visualizer.add_scalars: every class-wise value is a JSON scalar in vis_data/scalars.json
    (scalars_file, ) = glob.glob(osp.join(str(tmp_path), '*', 'vis_data', 'scalars.json'))
    with open(scalars_file) as f:
        logged = json.loads(f.readlines()[-1])
    classwise = {k: v for k, v in metrics.items() if '/IoU' in k or '/AP' in k}
    assert classwise and all(logged[k] == float(v) for k, v in classwise.items())
    # the tables (class | value | share, then mean ± std) are in the log file
    (log_file, ) = glob.glob(osp.join(str(tmp_path), '*', '*.log'))
    text = open(log_file).read()
    assert 'seg: class-wise IoU on the 2 images labeled for seg' in text
    assert 'det: class-wise COCO AP@[.5:.95] on the 2 images labeled for det' in text
    assert f"{metrics['seg/IoU_class_mean']:.3f} ± {metrics['seg/IoU_class_std']:.3f}" in text
