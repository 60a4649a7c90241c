"""Assemble ``OUT/gpu_check.json`` from the stage records of ``tools/gpu_check.sh`` (standard library only).

``gpu_check.sh`` leaves in its work folder ``WORK``: ``stages.tsv`` (one line per stage: name, status, seconds, exit
status, time limit, reason), each stage's log ``<stage>.log``, and the files some stages measure into
(``env.json``, ``mmcv.json``, ``install.json``, ``cuda_tests.xml``, ``dist_train/``, ``benchmark_*/``). This reads
them into one JSON::

    {"budget_s", "total_s", "ok": every selected stage passed,
     "stages": {name: {"status": ok | failed | timeout | skipped, "seconds", "rc", "timeout_s", "reason",
                       "error_tail": the last lines of its log (failed and timed-out stages)}},
     "figures": {"env": ..., "install": ..., "mmcv": ..., "cuda_tests": {"tests", "passed", "failed", "errors",
                 "skipped", "failures": [...]}, "dist_train": {"train": last train scalars, "val": last val
                 scalars, "iterations"}, "benchmark_fp32" / "benchmark_amp": benchmark.json}}

Usage: ``python3 tools/gpu_check_report.py WORK OUT/gpu_check.json BUDGET_S TOTAL_S``.
"""
import glob
import json
import os.path as osp
import re
import sys
import xml.etree.ElementTree as ET
from typing import Optional

TAIL_LINES = 40


def tail(path: str, lines: int = TAIL_LINES) -> str:
    if not osp.isfile(path):
        return ''
    with open(path, errors='replace') as f:
        return ''.join(f.readlines()[-lines:])


def load_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def junit(path: str) -> Optional[dict]:
    """Counts of a pytest ``--junitxml`` file, with the names and messages of failures."""
    if not osp.isfile(path):
        return None
    root = ET.parse(path).getroot()
    suite = root if root.tag == 'testsuite' else root.find('testsuite')
    counts = {k: int(suite.get(k, 0)) for k in ('tests', 'failures', 'errors', 'skipped')}
    failures = []
    for case in suite.iter('testcase'):
        for kind in ('failure', 'error'):
            node = case.find(kind)
            if node is not None:
                failures.append(f"{case.get('name')}: {kind}: {(node.get('message') or '')[:500]}")
    passed = counts['tests'] - counts['failures'] - counts['errors'] - counts['skipped']
    return dict(
        tests=counts['tests'],
        passed=passed,
        failed=counts['failures'],
        errors=counts['errors'],
        skipped=counts['skipped'],
        failures=failures)


def dist_log(path: str) -> dict:
    """Backend, world size and peak memory (MiB, mmengine's ``memory:`` of the CUDA log lines) of a training log."""
    out = {}
    if not osp.isfile(path):
        return out
    with open(path, errors='replace') as f:
        text = f.read()
    backend = re.search(r"dist_cfg: \{'backend': '(\w+)'", text)
    world = re.search(r'GPU number: (\d+)', text)
    memory = [int(m) for m in re.findall(r'\bmemory: (\d+)', text)]
    if backend:
        out['backend'] = backend.group(1)
    if world:
        out['world_size'] = int(world.group(1))
    if memory:
        out['max_memory_mib'] = max(memory)
    return out


def scalars(folder: str) -> Optional[dict]:
    """The last train and val records of mmengine's ``vis_data/scalars.json`` under ``folder``."""
    files = sorted(glob.glob(osp.join(folder, '*', 'vis_data', 'scalars.json')))
    if not files:
        return None
    train, val, iterations = None, None, 0
    with open(files[-1]) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if any(k.startswith('multitask/') or k.startswith('det/') or k.startswith('seg/') for k in record):
                val = record
            else:
                train = record
                iterations = max(iterations, int(record.get('iter', 0)))
    return dict(train=train, val=val, iterations=iterations)


def figures(work: str) -> dict:
    out = {}
    for name in ('env', 'install', 'mmcv'):
        value = load_json(osp.join(work, f'{name}.json'))
        if value is not None:
            out[name] = value
    tests = junit(osp.join(work, 'cuda_tests.xml'))
    if tests is not None:
        out['cuda_tests'] = tests
    dist = scalars(osp.join(work, 'dist_train'))
    if dist is not None:
        out['dist_train'] = dict(dist, **dist_log(osp.join(work, 'dist_train.log')))
    for name in ('benchmark_fp32', 'benchmark_amp'):
        value = load_json(osp.join(work, name, 'benchmark.json'))
        if value is not None:
            out[name] = value
    return out


def stages(work: str) -> dict:
    out = {}
    path = osp.join(work, 'stages.tsv')
    if not osp.isfile(path):
        return out
    with open(path) as f:
        for line in f:
            name, status, seconds, rc, limit, reason = (line.rstrip('\n').split('\t') + [''] * 6)[:6]
            record = dict(
                status=status,
                seconds=float(seconds or 0),
                rc=int(rc) if rc not in ('', '-') else None,
                timeout_s=int(limit) if limit not in ('', '-') else None)
            if reason:
                record['reason'] = reason
            if status in ('failed', 'timeout'):
                record['error_tail'] = tail(osp.join(work, f'{name}.log'))
            out[name] = record
    return out


def main(argv=None) -> dict:
    work, out_path, budget, total = (argv or sys.argv[1:])[:4]
    st = stages(work)
    report = dict(
        budget_s=float(budget),
        total_s=float(total),
        ok=bool(st) and all(s['status'] == 'ok' for s in st.values()),
        stages=st,
        figures=figures(work))
    with open(out_path, 'w') as f:
        json.dump(report, f, indent=2)
    return report


if __name__ == '__main__':
    main()
