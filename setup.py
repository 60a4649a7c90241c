from setuptools import find_packages, setup


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def installed(dist):
    from importlib.metadata import PackageNotFoundError, version
    try:
        version(dist)
        return True
    except PackageNotFoundError:
        return False


def opencv():
    """mmcv's rule: keep an installed headless OpenCV rather than add opencv-python beside it (two cv2s)."""
    if not installed('opencv-python') and installed('opencv-python-headless'):
        return 'opencv-python-headless'
    return 'opencv-python'


version = {}
with open('mtssl_mm/version.py', encoding='utf-8') as f:
    exec(f.read(), version)

# Ranges for `pip install -e .` into an existing OpenMMLab environment. requirements/install.sh pins the exact
# versions CI tests (requirements/*.txt and its own pins) and installs this package with --no-deps, in its own
# order: mmcv 2.1.0 must be built against the installed torch, which pip's isolated build cannot do, so install
# torch and mmcv (with ops) first, as the README says. tests/test_setup_requires.py checks that every pinned
# requirement there is listed here with a range that contains its pin.
install_requires = [
    # requirements/install.sh: torch (TORCH_SPEC, CI 2.13.0; bring your own CUDA build), mmcv, mmdet, mmseg
    'torch>=2.6',  # safe loading: torch.serialization.get_unsafe_globals_in_checkpoint (2.6)
    'mmcv>=2.0.0,<2.2.0',  # full mmcv with compiled ops (mmcv.ops), not mmcv-lite; mmdet 3.3 needs < 2.2
    'mmdet>=3.3.0,<3.4.0',
    'mmsegmentation>=1.2.2,<1.3.0',
    # requirements/mmcv_deps.txt
    'numpy',
    'mmengine>=0.10.7,<1.0.0',
    'addict',
    'packaging',
    'Pillow',
    'pyyaml',
    'yapf',
    opencv(),
    # requirements/runtime.txt (mmdet's and mmseg's runtime requirements, ours)
    'kornia>=0.9.0,<0.10.0',
    'pycocotools>=2.0.8',  # numpy 2 support
    'matplotlib',
    'scipy',
    'shapely',
    'six',
    'terminaltables',
    'tqdm',
    'prettytable',
    'ftfy',
    'regex',
    'cityscapesscripts',
    'tensorboard',  # mmengine's TensorboardVisBackend (torch.utils.tensorboard)
]

# requirements/deploy.txt pins (CI): onnx 1.23.2, onnxruntime 1.32.0, onnxscript 0.7.2 (torch's default ONNX
# exporter, torch.onnx.export(dynamo=True), needs it). With onnxruntime-gpu installed, do not add the CPU
# onnxruntime: install onnx and onnxscript alone.
deploy_requires = ['onnx>=1.23,<2', 'onnxruntime>=1.32,<2', 'onnxscript>=0.7,<1']

setup(
    name='mtssl_mm',
    version=version['__version__'],
    description='Multi-task (detection + segmentation) semi-supervised learning on partially '
    'labeled data, as an OpenMMLab extension',
    long_description=readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    python_requires='>=3.11',  # kornia 0.9.0 and onnxruntime 1.32 are built for Python >= 3.11
    install_requires=install_requires,
    extras_require={
        'deploy': deploy_requires,
        # tests/test_export_onnx.py exports and runs ORT; the linters of `make lint` (setup.cfg)
        'tests': ['pytest', 'pytest-xdist', 'flake8==7.5.0', 'isort==9.0.2', 'yapf==0.43.0'] + deploy_requires,
    },
    license='Apache-2.0',
)
