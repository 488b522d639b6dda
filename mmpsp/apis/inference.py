"""Segment image files with a trained model: colour masks and overlays.

Built on mmseg's ``init_model`` and ``inference_model`` (the test pipeline of
the config, ``EncoderDecoder.test_step``); the weights are loaded with
:func:`~mmpsp.engine.checks.load_checkpoint_checked`, which refuses a
checkpoint that does not fit the config instead of running a half-random
model.
"""
import os
import os.path as osp
from collections import Counter
from typing import Dict, List, Sequence, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmseg.apis import inference_model, init_model
from torch import nn

from mmpsp.engine.checks import load_checkpoint_checked
from mmpsp.registry import DATASETS
from mmpsp.utils.errors import ConfigKeyError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(inputs: Sequence[str]) -> List[str]:
    """Expand image files and folders into a sorted list of image files.

    Args:
        inputs (Sequence[str]): Image paths and/or folders (not searched
            recursively).

    Returns:
        list[str]: Image paths; a folder contributes its files whose suffix
        is in :data:`IMAGE_SUFFIXES`, sorted by name.
    """
    images = []
    for path in inputs:
        if osp.isdir(path):
            found = sorted(
                osp.join(path, name) for name in os.listdir(path)
                if name.lower().endswith(IMAGE_SUFFIXES))
            if not found:
                raise FileNotFoundError(
                    f'folder {path} holds no image (suffixes '
                    f'{", ".join(IMAGE_SUFFIXES)}); pass image files or a '
                    'folder that has some')
            images.extend(found)
        elif osp.isfile(path):
            images.append(path)
        else:
            raise FileNotFoundError(
                f'{path} is neither an image file nor a folder; check the '
                'path')
    return images


def init_segmentor(config: Union[str, Config],
                   checkpoint: str,
                   device: str = 'cpu') -> nn.Module:
    """Build a segmentor from a config and load a checkpoint into it.

    Args:
        config (str | Config): Config file or object.
        checkpoint (str): Checkpoint path; every weight must fit the model.
        device (str): ``'cpu'`` or ``'cuda'`` (``'cuda:N'``). Defaults to
            ``'cpu'``.

    Returns:
        nn.Module: The model in eval mode with ``dataset_meta`` (classes and
        palette) from the checkpoint, else from the config's test dataset.
    """
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise RuntimeError(f'device={device!r} but this torch build sees no '
                           'CUDA device; use --device cpu')
    model = init_model(config, checkpoint=None, device='cpu')
    report = load_checkpoint_checked(model, checkpoint)
    if report.dataset_meta is None:
        dataset = model.cfg.test_dataloader.dataset
        dataset_cls = DATASETS.get(dataset.type)
        if dataset_cls is None:
            raise ConfigKeyError(
                f'{checkpoint} has no class names or palette in its meta, '
                f'and the config\'s dataset type {dataset.type!r} is not '
                'registered; import the package that defines it or use a '
                'checkpoint saved by tools/train.py')
        model.dataset_meta = dict(dataset_cls.METAINFO)
    return model.to(device).eval()


def predict(model: nn.Module, image: Union[str, np.ndarray]) -> np.ndarray:
    """Predict the label map of one image.

    Args:
        model (nn.Module): From :func:`init_segmentor`.
        image (str | np.ndarray): Image path, or a BGR ``(H, W, 3)`` uint8
            array as ``cv2.imread`` gives.

    Returns:
        np.ndarray: Class indices, ``(H, W)`` int64, at the image's size.
    """
    result = inference_model(model, image)
    return result.pred_sem_seg.data.squeeze(0).cpu().numpy()


def colour_mask(label: np.ndarray,
                palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Paint a label map with the palette.

    Args:
        label (np.ndarray): Class indices, ``(H, W)`` in
            ``[0, len(palette))``.
        palette (Sequence[Sequence[int]]): RGB per class.

    Returns:
        np.ndarray: RGB image, ``(H, W, 3)`` uint8.
    """
    return np.asarray(palette, np.uint8)[label]


def blend(image: np.ndarray, colour: np.ndarray,
          opacity: float = 0.5) -> np.ndarray:
    """Lay a colour mask over an image.

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8.
        colour (np.ndarray): ``(H, W, 3)`` uint8, same channel order.
        opacity (float): Weight of the mask. Defaults to 0.5.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8.
    """
    mixed = (1 - opacity) * image.astype(np.float32) + opacity * colour
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def segment_images(inputs: Sequence[str],
                   config: Union[str, Config],
                   checkpoint: str,
                   out_dir: str,
                   device: str = 'cpu',
                   opacity: float = 0.5) -> List[Dict[str, str]]:
    """Segment images and write a colour mask and an overlay for each.

    For an input ``NAME.EXT`` writes ``out_dir/NAME_mask.png`` (the
    palette colour of every pixel's class) and ``out_dir/NAME_overlay.png``
    (the mask blended over the image with weight ``opacity``).

    Args:
        inputs (Sequence[str]): Image files and/or folders.
        config (str | Config): Config file or object.
        checkpoint (str): Checkpoint path.
        out_dir (str): Output folder, created if missing.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        opacity (float): Mask weight in the overlay, in ``(0, 1]``.
            Defaults to 0.5.

    Returns:
        list[dict[str, str]]: Per image, ``image``, ``mask`` and
        ``overlay`` paths.

    Raises:
        ValueError: ``opacity`` is out of range, or two inputs share a
            stem (their outputs would overwrite each other).
    """
    if not 0 < opacity <= 1:
        raise ValueError(f'opacity={opacity}; use a value in (0, 1]')
    images = list_images(inputs)
    stems = [osp.splitext(osp.basename(path))[0] for path in images]
    # Outputs are named by stem: two inputs with one stem (a.jpg and a.png,
    # or a.png in two folders) would overwrite each other's results.
    counts = Counter(stems)
    clashes = [p for p, stem in zip(images, stems) if counts[stem] > 1]
    if clashes:
        raise ValueError(
            f'inputs {clashes} share a file name stem, so their outputs in '
            f'{out_dir} would overwrite each other; segment them in '
            'separate runs with different --out folders')
    model = init_segmentor(config, checkpoint, device)
    palette = model.dataset_meta['palette']
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for path, stem in zip(images, stems):
        # Decoded once, here, so that an unreadable file is named.
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(
                f'cannot read image {path}; re-export it or leave it out')
        mask = colour_mask(predict(model, image), palette)[..., ::-1]
        overlay = blend(image, mask, opacity)
        paths = dict(
            image=path,
            mask=osp.join(out_dir, f'{stem}_mask.png'),
            overlay=osp.join(out_dir, f'{stem}_overlay.png'))
        cv2.imwrite(paths['mask'], mask)
        cv2.imwrite(paths['overlay'], overlay)
        written.append(paths)
    return written
