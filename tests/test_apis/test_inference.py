"""`tools/inference.py` on a checkpoint made here."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from mmpsp.apis.inference import (
    blend,
    init_segmentor,
    list_images,
    segment_images,
)
from mmpsp.demo.scenes import CLASSES, PALETTE, generate_scenes_demo
from mmpsp.registry import DATASETS, MODELS

TINY = {
    'model.backbone.stem_channels': 8,
    'model.backbone.base_channels': 8,
    'model.decode_head.in_channels': 64,
    'model.decode_head.channels': 8,
    'model.auxiliary_head.in_channels': 32,
    'model.auxiliary_head.channels': 8,
}


@pytest.fixture(scope='module')
def checkpoint(repo_root, tmp_path_factory):
    """A tiny random PSPNet, its config, checkpoint and three val images."""
    tmp = tmp_path_factory.mktemp('inference')
    data_root = str(tmp / 'data')
    generate_scenes_demo(data_root, num_train=1, num_val=3, size=48, seed=2)
    cfg = Config.fromfile(
        str(repo_root / 'configs' / 'pspnet' / 'pspnet_r18-d8_scenes-demo.py'))
    cfg.merge_from_dict(TINY)
    cfg.test_dataloader.dataset.data_root = data_root
    config = str(tmp / 'pspnet_tiny.py')
    cfg.dump(config)
    init_default_scope('mmpsp')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    # Random BN statistics so that the random model's argmax varies over
    # the image instead of naming one class everywhere.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    ckpt = str(tmp / 'tiny.pth')
    torch.save(
        dict(
            meta=dict(dataset_meta=dict(classes=CLASSES, palette=PALETTE)),
            state_dict=model.state_dict()), ckpt)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    with torch.no_grad():
        outputs = model.test_step(
            pseudo_collate([dataset[i] for i in range(len(dataset))]))
    expected = {
        out.img_path: out.pred_sem_seg.data.squeeze(0).numpy()
        for out in outputs
    }
    return dict(config=config, checkpoint=ckpt, expected=expected, tmp=tmp,
                images=f'{data_root}/images/val')


@pytest.fixture(scope='module')
def inferred(repo_root, checkpoint):
    out = checkpoint['tmp'] / 'out'
    proc = subprocess.run([
        sys.executable,
        str(repo_root / 'tools' / 'inference.py'), checkpoint['images'],
        '--config', checkpoint['config'], '--checkpoint',
        checkpoint['checkpoint'], '--out',
        str(out), '--device', 'cpu'
    ],
                          cwd=str(repo_root),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _decode(mask_bgr):
    """Colour mask back to class indices; -1 where no palette colour."""
    rgb = mask_bgr[..., ::-1].reshape(-1, 1, 3).astype(int)
    hits = (rgb == np.asarray(PALETTE)[None]).all(-1)
    index = np.where(hits.any(1), hits.argmax(1), -1)
    return index.reshape(mask_bgr.shape[:2])


@pytest.mark.slow
def test_inference_writes_mask_and_overlay_per_image(checkpoint, inferred):
    names = sorted(p.name for p in inferred.iterdir())
    stems = sorted(p.rsplit('/', 1)[1][:-4] for p in checkpoint['expected'])
    assert names == sorted([f'{s}_mask.png' for s in stems] +
                           [f'{s}_overlay.png' for s in stems])


@pytest.mark.slow
def test_inference_equals_the_models_own_prediction(checkpoint, inferred):
    classes_seen = set()
    for img_path, expected in checkpoint['expected'].items():
        stem = img_path.rsplit('/', 1)[1][:-4]
        mask = cv2.imread(str(inferred / f'{stem}_mask.png'))
        decoded = _decode(mask)
        assert (decoded >= 0).all(), 'mask holds a non-palette colour'
        np.testing.assert_array_equal(decoded, expected)
        classes_seen |= set(np.unique(expected).tolist())
        image = cv2.imread(img_path)
        overlay = cv2.imread(str(inferred / f'{stem}_overlay.png'))
        np.testing.assert_array_equal(overlay, blend(image, mask))
    # A constant map would make the comparison above nearly vacuous.
    assert len(classes_seen) > 1


def test_single_file_and_bad_paths(checkpoint, tmp_path):
    first = sorted(checkpoint['expected'])[0]
    assert list_images([first]) == [first]
    assert len(list_images([checkpoint['images']])) == 3
    with pytest.raises(FileNotFoundError, match='no_such.png'):
        list_images([str(tmp_path / 'no_such.png')])
    with pytest.raises(FileNotFoundError, match='holds no image'):
        list_images([str(tmp_path)])


def test_inputs_sharing_a_stem_are_refused(checkpoint, tmp_path):
    first = sorted(checkpoint['expected'])[0]
    copy = tmp_path / 'other' / first.rsplit('/', 1)[1]
    copy.parent.mkdir()
    copy.write_bytes(open(first, 'rb').read())
    with pytest.raises(ValueError, match='share a file name stem'):
        segment_images([first, str(copy)], checkpoint['config'],
                       checkpoint['checkpoint'], str(tmp_path / 'out'))
    assert not (tmp_path / 'out').exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only box')
def test_cuda_request_without_cuda_names_the_fix(checkpoint):
    with pytest.raises(RuntimeError, match='--device cpu'):
        init_segmentor(checkpoint['config'], checkpoint['checkpoint'],
                       'cuda')


def test_unreadable_image_is_named(checkpoint, tmp_path):
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not a png')
    with pytest.raises(ValueError, match=f'cannot read image {broken}'):
        segment_images([str(broken)], checkpoint['config'],
                       checkpoint['checkpoint'], str(tmp_path / 'out'))
