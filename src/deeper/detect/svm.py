"""The last stage of R-CNN and SPPNet: linear SVMs that score proposals, ridge regressors that move their boxes.

Not gradient training: once the network is trained, its features of the proposals of
``scenes`` training scenes (and of their true boxes) are extracted, and per class ``c``:

- a **linear SVM** (scikit-learn's ``LinearSVC``) on the ``fc7`` features: positives are the
  true boxes of class ``c``, negatives every proposal whose IoU with each true ``c`` is below
  ``neg_iou`` (0.3, the paper's); features are scaled so their mean L2 norm is 20 (the
  paper's), the scale folded into the stored weights.  All negatives of these scenes fit in
  memory, so the paper's hard-negative mining (rounds over a disk cache of features)
  reduces to training on all of them;
- a **ridge regressor** (scikit-learn's ``Ridge``, ``alpha`` 1000 as in the paper) from the
  ``pool5`` (R-CNN) or pyramid (SPPNet) features of proposals that overlap a true ``c`` at
  IoU >= ``reg_iou`` (0.6) to the offsets ``(tx, ty, tw, th)`` that turn them into it.

The results go into the model's buffers (``svm_weight``, ``svm_bias``, ``reg_weight``,
``reg_bias``; ``svm_ready`` set), so the weights file carries them.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from deeper.models.detect.boxes import box_iou, encode


@torch.inference_mode()
def collect(model, ds, proposals, scenes: int, *, batch: int = 16, reg_iou: float = 0.6):
    """Features of the true boxes and proposals of the first ``scenes`` scenes of ``ds``.

    Returns ``fc7 (K, F)``, per region the best IoU with a truth of each class ``(K, C)``,
    ``is_true (K,)``, ``label (K,)`` (the truth's class for true boxes, else -1) and, for the
    regions that overlap a truth at ``reg_iou`` or more, ``pool (R, P)``, their class ``(R,)``
    and regression targets ``(R, 4)``.
    """
    device = next(model.parameters()).device
    c = model.num_classes
    fc_all, iou_all, true_all, lab_all = [], [], [], []
    pool_sel, cls_sel, tgt_sel = [], [], []
    n = min(scenes, len(ds))
    for start in range(0, n, batch):
        idx = list(range(start, min(n, start + batch)))
        x = ds.float_images(idx).to(device)
        regions, per_iou, is_true, labels, reg = [], [], [], [], []
        for i in idx:
            t = ds.targets([i])[0]
            gt, gl = t["boxes"].float().cpu(), t["labels"].cpu()
            props = proposals[i].float().cpu()
            r = torch.cat([gt, props])
            iou = box_iou(r, gt) if len(gt) else torch.zeros(len(r), 0)
            by_class = torch.zeros(len(r), c)
            for k in range(c):
                if (gl == k).any():
                    by_class[:, k] = iou[:, gl == k].max(1).values
            regions.append(r)
            per_iou.append(by_class)
            is_true.append(torch.arange(len(r)) < len(gt))
            labels.append(torch.cat([gl, torch.full((len(props),), -1, dtype=torch.long)]))
            if len(gt):  # regression samples: proposals (not the truths) near a truth
                best, j = iou[len(gt) :].max(1)
                near = torch.nonzero(best >= reg_iou).squeeze(1)
                reg.append((near + len(gt), gl[j[near]], encode(gt[j[near]], props[near])))
            else:
                reg.append(
                    (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0, 4))
                )
        fc7, pool = model.proposal_features(x, [r.to(device) for r in regions])
        fc7, pool = fc7.float().cpu(), pool.float().cpu()
        offset = 0
        for r, (rows, cls, tgt) in zip(regions, reg):
            pool_sel.append(pool[offset + rows])
            cls_sel.append(cls)
            tgt_sel.append(tgt)
            offset += len(r)
        fc_all.append(fc7)
        iou_all += per_iou
        true_all += is_true
        lab_all += labels
    return (
        torch.cat(fc_all), torch.cat(iou_all), torch.cat(true_all), torch.cat(lab_all),
        torch.cat(pool_sel), torch.cat(cls_sel), torch.cat(tgt_sel),
    )  # fmt: skip


def fit_svm_stage(
    model, ds, proposals, *, scenes: int, svm_c: float = 0.01, pos_weight: float = 2.0, neg_iou: float = 0.3,
    reg_iou: float = 0.6, ridge_alpha: float = 1000.0, norm: float = 20.0,
) -> dict:  # fmt: skip
    """Fit the SVMs and box regressors of ``model`` (an R-CNN or SPPNet) in place; a report of what was fitted."""
    from sklearn.linear_model import Ridge
    from sklearn.svm import LinearSVC

    start = time.perf_counter()
    model.eval()
    fc7, iou, is_true, label, pool, reg_cls, reg_tgt = collect(model, ds, proposals, scenes, reg_iou=reg_iou)
    c = model.num_classes
    fc_scale = norm / float(fc7.norm(dim=1).mean().clamp(min=1e-6))
    x = (fc7 * fc_scale).numpy().astype(np.float64)
    weight, bias = torch.zeros_like(model.svm_weight), torch.full_like(model.svm_bias, -10.0)
    positives = negatives = 0
    for k in range(c):
        pos = is_true & (label == k)
        neg = (iou[:, k] < neg_iou) & ~pos
        if not pos.any() or not neg.any():  # a class these scenes never show: it never scores
            continue
        rows = torch.cat([torch.nonzero(pos).squeeze(1), torch.nonzero(neg).squeeze(1)]).numpy()
        y = np.r_[np.ones(int(pos.sum())), np.zeros(int(neg.sum()))]
        svm = LinearSVC(C=svm_c, class_weight={1: pos_weight, 0: 1.0}, max_iter=5000, random_state=0)
        svm.fit(x[rows], y)
        weight[k] = torch.as_tensor(svm.coef_[0] * fc_scale, dtype=weight.dtype)
        bias[k] = float(svm.intercept_[0])
        positives += int(pos.sum())
        negatives += int(neg.sum())
    reg_w, reg_b = torch.zeros_like(model.reg_weight), torch.zeros_like(model.reg_bias)
    pool_scale = norm / float(pool.norm(dim=1).mean().clamp(min=1e-6)) if len(pool) else 1.0
    fitted = 0
    for k in range(c):
        rows = torch.nonzero(reg_cls == k).squeeze(1)
        if len(rows) < 2:
            continue
        ridge = Ridge(alpha=ridge_alpha)
        ridge.fit(
            (pool[rows] * pool_scale).numpy().astype(np.float64), reg_tgt[rows].numpy().astype(np.float64)
        )
        reg_w[k] = torch.as_tensor(ridge.coef_ * pool_scale, dtype=reg_w.dtype)
        reg_b[k] = torch.as_tensor(ridge.intercept_, dtype=reg_b.dtype)
        fitted += len(rows)
    model.svm_weight.copy_(weight)
    model.svm_bias.copy_(bias)
    model.reg_weight.copy_(reg_w)
    model.reg_bias.copy_(reg_b)
    model.svm_ready.fill_(True)
    return {
        "svm_scenes": min(scenes, len(ds)),
        "svm_positives": positives,
        "svm_negatives": negatives,
        "regression_samples": fitted,
        "svm_seconds": time.perf_counter() - start,
    }
