"""The scenes-demo generator and its dataset class."""
import filecmp
import os

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mmpsp.demo import ScenesDemoDataset, generate_scenes_demo
from mmpsp.demo.scenes import CLASSES, PALETTE, SCENES, render_scene
from mmpsp.registry import DATASETS

SIZE = 48


def _files(root):
    return sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, _, names in os.walk(root) for f in names)


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('scenes') / 'seed0')
    generate_scenes_demo(root, num_train=4, num_val=3, size=SIZE, seed=0)
    return root


def test_same_seed_same_bytes(scenes, tmp_path):
    again = str(tmp_path / 'again')
    generate_scenes_demo(again, num_train=4, num_val=3, size=SIZE, seed=0)
    names = _files(scenes)
    assert names == _files(again)
    assert len([n for n in names if n.endswith('.png')]) == 2 * (4 + 3)
    match, mismatch, errors = filecmp.cmpfiles(
        scenes, again, names, shallow=False)
    assert mismatch == [] and errors == []


def test_other_seed_other_bytes(scenes, tmp_path):
    other = str(tmp_path / 'seed1')
    generate_scenes_demo(other, num_train=4, num_val=3, size=SIZE, seed=1)
    pngs = [n for n in _files(scenes) if n.endswith('.png')]
    _, mismatch, _ = filecmp.cmpfiles(scenes, other, pngs, shallow=False)
    assert sorted(mismatch) == pngs


def test_layout_labels_in_range_and_every_class(scenes):
    seen = np.zeros(len(CLASSES), bool)
    for split, n in (('train', 4), ('val', 3)):
        for i in range(n):
            img = cv2.imread(
                os.path.join(scenes, 'images', split, f'{i:05d}.png'),
                cv2.IMREAD_UNCHANGED)
            ann = cv2.imread(
                os.path.join(scenes, 'annotations', split, f'{i:05d}.png'),
                cv2.IMREAD_UNCHANGED)
            assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
            assert ann.shape == (SIZE, SIZE) and ann.dtype == np.uint8
            assert ann.max() < len(CLASSES)
            if split == 'train':
                seen[np.unique(ann)] = True
    # Scenes cycle with the index, so four training images hold all classes.
    assert seen.all(), [c for c, s in zip(CLASSES, seen) if not s]


@pytest.mark.parametrize('scene', SCENES)
def test_render_scene_is_deterministic_per_generator(scene):
    a = render_scene(np.random.default_rng(3), 40, scene)
    b = render_scene(np.random.default_rng(3), 40, scene)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_cars_and_boats_look_alike():
    """Vehicles carry no class cue: their colours overlap between scenes."""
    colours = {}
    for scene, cls in (('street', CLASSES.index('car')),
                       ('harbour', CLASSES.index('boat'))):
        pixels = []
        for seed in range(12):
            img, label = render_scene(np.random.default_rng(seed), 64, scene)
            pixels.append(img[label == cls].astype(np.float32))
        colours[scene] = np.concatenate(pixels)
    car_mean = colours['street'].mean(0)
    boat_mean = colours['harbour'].mean(0)
    # Spread within a class dwarfs the difference between them.
    assert np.abs(car_mean - boat_mean).max() < colours['street'].std(0).min()


def test_stale_samples_are_removed(tmp_path):
    root = str(tmp_path / 'shrink')
    generate_scenes_demo(root, num_train=5, num_val=2, size=32, seed=0)
    generate_scenes_demo(root, num_train=2, num_val=1, size=32, seed=0)
    assert sorted(os.listdir(os.path.join(root, 'images', 'train'))) == [
        '00000.png', '00001.png'
    ]
    assert os.listdir(os.path.join(root, 'annotations', 'val')) == [
        '00000.png'
    ]


@pytest.mark.parametrize('kwargs, word', [(dict(size=16), 'size=16'),
                                          (dict(num_val=0), 'num_val=0')])
def test_bad_arguments_name_the_value(tmp_path, kwargs, word):
    with pytest.raises(ValueError, match=word):
        generate_scenes_demo(str(tmp_path / 'bad'), **kwargs)


def test_dataset_reads_the_layout(scenes):
    init_default_scope('mmpsp')
    dataset = DATASETS.build(
        dict(
            type='ScenesDemoDataset',
            data_root=scenes,
            data_prefix=dict(
                img_path='images/val', seg_map_path='annotations/val'),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations'),
                dict(type='PackSegInputs')
            ]))
    assert isinstance(dataset, ScenesDemoDataset)
    assert len(dataset) == 3
    assert dataset.metainfo['classes'] == CLASSES
    assert [list(c) for c in dataset.metainfo['palette']] == PALETTE
    sample = dataset[0]
    gt = sample['data_samples'].gt_sem_seg.data
    assert tuple(sample['inputs'].shape) == (3, SIZE, SIZE)
    expected = cv2.imread(
        os.path.join(scenes, 'annotations', 'val', '00000.png'),
        cv2.IMREAD_UNCHANGED)
    assert np.array_equal(gt.squeeze(0).numpy(), expected)
