"""The tests' generated data set: :mod:`mtssl_mm.utils.toy_data` (in the package, which ``tools/benchmark.py``
also uses), under the name the tests import (``from toy_data import write_dataset``)."""
from mtssl_mm.utils.toy_data import CAR, DET_CLASSES, PERSON, ROAD, SEG_CLASSES, SKY, make_image, write_dataset

__all__ = ['DET_CLASSES', 'SEG_CLASSES', 'ROAD', 'SKY', 'PERSON', 'CAR', 'make_image', 'write_dataset']
