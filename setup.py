from setuptools import find_packages, setup


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


version = {}
with open('mtssl_mm/version.py', encoding='utf-8') as f:
    exec(f.read(), version)

setup(
    name='mtssl_mm',
    version=version['__version__'],
    description='Multi-task (detection + segmentation) semi-supervised learning on partially '
    'labeled data, as an OpenMMLab extension',
    long_description=readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    python_requires='>=3.9',
    # mmcv/mmdet/mmseg are installed by requirements/install.sh in a fixed order (see README).
    install_requires=[],
    license='Apache-2.0',
)
