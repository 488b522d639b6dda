"""Evaluation, tables and figures for the scenes demo.

Figures are drawn on :class:`matplotlib.figure.Figure` objects, not through
``pyplot``: that renders with Agg on a headless machine (ssh, CI) without
switching the process-wide backend of whoever imports this module.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from mmseg.evaluation import IoUMetric
from torch import nn
from torch.utils.data import DataLoader

from mmpsp.apis.inference import blend, colour_mask


@torch.no_grad()
def evaluate_segmentor(model: nn.Module,
                       dataloader: DataLoader,
                       num_classes: int,
                       ignore_index: int = 255,
                       keep: int = 0) -> Dict:
    """Per-class IoU of a segmentor on a data set, plus kept predictions.

    Areas are accumulated with mmseg's ``IoUMetric.intersect_and_union`` and
    turned into metrics by ``IoUMetric.total_area_to_metrics``, so the
    numbers match ``IoUMetric`` on the same data.

    Args:
        model (nn.Module): An mmseg segmentor (``test_step`` API).
        dataloader (DataLoader): Yields mmseg test batches with ground truth.
        num_classes (int): Number of classes.
        ignore_index (int): Label value left out. Defaults to 255.
        keep (int): How many predictions, in data order, to return for
            figures. Defaults to 0.

    Returns:
        dict: ``IoU`` and ``Acc`` (lists of length ``num_classes``, percent,
        ``None`` where the class is absent from ground truth and
        predictions), ``mIoU``, ``mAcc``, ``aAcc`` (percent) and ``samples``:
        up to ``keep`` dicts with ``img_path``, ``gt`` and ``pred``
        (``(H, W)`` int64 arrays).
    """
    model.eval()
    totals = [torch.zeros(num_classes, dtype=torch.float64) for _ in range(4)]
    samples: List[Dict] = []
    for batch in dataloader:
        for out in model.test_step(batch):
            pred = out.pred_sem_seg.data.squeeze(0).cpu()
            gt = out.gt_sem_seg.data.squeeze(0).cpu().to(pred.dtype)
            areas = IoUMetric.intersect_and_union(pred, gt, num_classes,
                                                  ignore_index)
            for total, area in zip(totals, areas):
                total += area.double()
            if len(samples) < keep:
                samples.append(
                    dict(
                        img_path=out.img_path,
                        gt=gt.numpy(),
                        pred=pred.numpy()))
    metrics = IoUMetric.total_area_to_metrics(*totals, metrics=['mIoU'])
    per_class = {
        key: [None if np.isnan(v) else round(float(v) * 100, 2)
              for v in metrics[key]]
        for key in ('IoU', 'Acc')
    }
    summary = {
        f'm{key}': round(float(np.nanmean(metrics[key])) * 100, 2)
        for key in ('IoU', 'Acc')
    }
    summary['aAcc'] = round(float(metrics['aAcc']) * 100, 2)
    return dict(**per_class, **summary, samples=samples)


def results_table(classes: Sequence[str], results: Dict[str, Dict]) -> str:
    """Per-class IoU of several models side by side, as markdown.

    Args:
        classes (Sequence[str]): Class names, in label order.
        results (dict[str, dict]): Model name to the output of
            :func:`evaluate_segmentor`.

    Returns:
        str: A markdown table: one row per class, then ``mIoU``, ``mAcc``
        and ``aAcc``; one column per model.
    """
    names = list(results)

    def cell(v: Optional[float]) -> str:
        return 'n/a' if v is None else f'{v:.2f}'

    lines = ['| class | ' + ' | '.join(names) + ' |',
             '|---|' + '---:|' * len(names)]
    for i, cls in enumerate(classes):
        row = [cell(results[n]['IoU'][i]) for n in names]
        lines.append(f'| {cls} | ' + ' | '.join(row) + ' |')
    for key in ('mIoU', 'mAcc', 'aAcc'):
        row = [cell(results[n][key]) for n in names]
        lines.append(f'| **{key}** | ' + ' | '.join(row) + ' |')
    return '\n'.join(lines) + '\n'


def write_results(path_stem: str, classes: Sequence[str],
                  results: Dict[str, Dict], extra: Dict) -> None:
    """Write ``<path_stem>.json`` and ``<path_stem>.md``.

    Args:
        path_stem (str): Output path without suffix.
        classes (Sequence[str]): Class names, in label order.
        results (dict[str, dict]): Model name to the output of
            :func:`evaluate_segmentor` (``samples`` is left out).
        extra (dict): Run facts stored under ``run`` (iterations, timings,
            checkpoints).
    """
    payload = dict(
        classes=list(classes),
        models={
            name: {
                'mIoU': r['mIoU'],
                'mAcc': r['mAcc'],
                'aAcc': r['aAcc'],
                'per_class_IoU': dict(zip(classes, r['IoU'])),
                'per_class_Acc': dict(zip(classes, r['Acc'])),
            }
            for name, r in results.items()
        },
        run=extra)
    with open(path_stem + '.json', 'w') as f:
        json.dump(payload, f, indent=2)
    with open(path_stem + '.md', 'w') as f:
        f.write('# Scenes demo: per-class IoU (%) on the val split\n\n')
        f.write(results_table(classes, results))


def read_scalars(path: str) -> Dict[str, List]:
    """Read the training loss and validation mIoU from mmengine's log.

    Args:
        path (str): ``<log_dir>/vis_data/scalars.json`` written by
            mmengine's ``LocalVisBackend`` (one JSON object per line).

    Returns:
        dict[str, list]: ``loss_iter``, ``loss``, ``miou_iter``, ``miou``.
    """
    curves = dict(loss_iter=[], loss=[], miou_iter=[], miou=[])
    if not osp.isfile(path):
        return curves
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if 'loss' in record:
                curves['loss_iter'].append(record['iter'])
                curves['loss'].append(record['loss'])
            if 'mIoU' in record:
                curves['miou_iter'].append(record['step'])
                curves['miou'].append(record['mIoU'])
    return curves


def plot_curves(curves: Dict[str, Dict[str, List]], out_file: str) -> None:
    """Plot training loss and validation mIoU against iterations.

    Args:
        curves (dict[str, dict]): Model name to :func:`read_scalars` output.
        out_file (str): PNG path.
    """
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_miou = fig.subplots(1, 2)
    for name, c in curves.items():
        ax_loss.plot(c['loss_iter'], c['loss'], label=name)
        ax_miou.plot(c['miou_iter'], c['miou'], marker='o', label=name)
    ax_loss.set(xlabel='iteration', ylabel='training loss (total)',
                title='Training loss')
    ax_miou.set(xlabel='iteration', ylabel='val mIoU (%)',
                title='Validation mIoU')
    for ax in (ax_loss, ax_miou):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)


def plot_predictions(images: Sequence[np.ndarray],
                     gts: Sequence[np.ndarray],
                     preds: Dict[str, Sequence[np.ndarray]],
                     classes: Sequence[str],
                     palette: Sequence[Sequence[int]],
                     out_file: str) -> None:
    """Image, ground truth and each model's prediction overlay, per row.

    Args:
        images (Sequence[np.ndarray]): RGB images, ``(H, W, 3)`` uint8.
        gts (Sequence[np.ndarray]): Label maps, ``(H, W)``.
        preds (dict[str, Sequence[np.ndarray]]): Model name to predicted
            label maps, ``(H, W)``, aligned with ``images``.
        classes (Sequence[str]): Class names for the legend.
        palette (Sequence[Sequence[int]]): RGB per class.
        out_file (str): PNG path.
    """
    cols = 2 + len(preds)
    rows = len(images)
    fig = Figure(figsize=(2.4 * cols, 2.4 * rows + 0.8))
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, (img, gt) in enumerate(zip(images, gts)):
        panels = [('image', img), ('ground truth', colour_mask(gt, palette))]
        panels += [(name, blend(img, colour_mask(p[r], palette)))
                   for name, p in preds.items()]
        for c, (title, panel) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(panel, interpolation='nearest')
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title)
    handles = [
        Patch(color=np.asarray(colour) / 255., label=name)
        for name, colour in zip(classes, palette)
    ]
    fig.legend(handles=handles, loc='lower center', ncol=6, fontsize=8)
    fig.tight_layout(rect=(0, 0.8 / (2.4 * rows + 0.8), 1, 1))
    fig.savefig(out_file, dpi=100)
