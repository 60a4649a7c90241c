"""What to run on: image files, folders (searched recursively) and glob patterns, and one output name each."""
import glob
import os
import os.path as osp
from collections import defaultdict
from typing import Iterable, List, Sequence

# the image extensions of mmdet's DetInferencer, matched case-insensitively
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


def is_image_file(path: str) -> bool:
    return osp.isfile(path) and path.lower().endswith(IMG_EXTENSIONS)


def images_in_folder(folder: str) -> List[str]:
    """Every image under ``folder``, its subfolders included, sorted by path (hidden folders skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
        found.extend(osp.join(dirpath, f) for f in filenames if f.lower().endswith(IMG_EXTENSIONS))
    return sorted(found)


def collect_images(inputs: Iterable[str]) -> List[str]:
    """Expand command-line inputs into a list of image files, in the order given.

    Each input is

    - a file: taken as it is, whatever its extension (the image reader decides);
    - a folder: every image in it and in its subfolders (extensions :data:`IMG_EXTENSIONS`), sorted;
    - a glob pattern (``*``, ``?``, ``[...]``; ``**`` spans folders): the images it matches, sorted; a folder it
      matches is searched as above.

    A file reached twice (given twice, or by a folder and a glob) is kept once, at its first place.

    Raises:
        FileNotFoundError: An input that gives no image; the message names it.
    """
    images, seen = [], set()
    for item in inputs:
        item = str(item)
        if osp.isfile(item):
            found = [item]
        elif osp.isdir(item):
            found = images_in_folder(item)
        elif glob.has_magic(item):
            found = []
            for match in sorted(glob.glob(item, recursive=True)):
                found.extend(images_in_folder(match) if osp.isdir(match) else [match] if is_image_file(match) else [])
        else:
            raise FileNotFoundError(f'input {item!r}: no such file or folder')
        if not found:
            what = 'the folder holds' if osp.isdir(item) else 'the glob pattern matches'
            raise FileNotFoundError(f'input {item!r}: {what} no image (extensions {IMG_EXTENSIONS})')
        for path in found:
            key = osp.realpath(path)
            if key not in seen:
                seen.add(key)
                images.append(path)
    return images


def output_names(paths: Sequence[str]) -> List[str]:
    """One distinct output name (no extension, no folder) per image path.

    An image's name is its file stem (``aachen_000000_000019_leftImg8bit``). Images that share a stem (same
    name in different folders, or ``x.png`` beside ``x.jpg``) are named after their path relative to the
    deepest folder they have in common, folders joined by ``__`` (``a__x``, ``b__x``), the extension kept
    (``x_png``, ``x_jpg``) where that alone still collides. So no output overwrites another, and every name says
    where its image came from.
    """
    stems = [osp.splitext(osp.basename(p))[0] for p in paths]
    groups = defaultdict(list)
    for i, stem in enumerate(stems):
        groups[stem].append(i)
    names = list(stems)
    for stem, idx in groups.items():
        if len(idx) == 1:
            continue
        absolute = [osp.abspath(paths[i]) for i in idx]
        common = osp.commonpath([osp.dirname(p) for p in absolute])
        rel = [osp.relpath(p, common) for p in absolute]
        no_ext = [osp.splitext(r)[0] for r in rel]
        chosen = no_ext if len(set(no_ext)) == len(no_ext) else [r.replace('.', '_') for r in rel]
        for i, name in zip(idx, chosen):
            names[i] = name.replace(os.sep, '__')
    # a derived name may equal another image's own stem (a file literally named 'a__x'): number the later ones
    taken = set()
    for i, name in enumerate(names):
        candidate, k = name, 1
        while candidate in taken:
            candidate, k = f'{name}-{k}', k + 1
        taken.add(candidate)
        names[i] = candidate
    return names
