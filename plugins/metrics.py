"""Built-in metrics: accuracy, macro-averaged F1 and cross-entropy (NLL).

Each ``compute(logits, targets)`` receives the whole test split's logits
``(N, C)`` and int64 targets ``(N,)`` as torch tensors, for the PyTorch model
and for the ONNX Runtime session alike. torch is imported on call.
"""

from __future__ import annotations

from harness import MetricSpec, hookimpl


def accuracy(logits, targets) -> float:
    """Fraction of samples whose arg-max logit is the target: the count over the total in Python, so
    741 of 1000 is stored as 0.741 (a float32 mean gave 0.7409999966621399, below a 0.741 floor)."""
    return int((logits.argmax(dim=1) == targets).sum().item()) / len(targets)


def macro_f1(logits, targets) -> float:
    """Unweighted mean over classes of the F1 score (classes absent from both sides count as 0)."""
    import torch

    num_classes = logits.shape[1]
    pred = logits.argmax(dim=1)
    confusion = torch.bincount(targets * num_classes + pred, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes).double()
    tp = confusion.diag()
    precision_den = confusion.sum(dim=0)
    recall_den = confusion.sum(dim=1)
    f1 = torch.where(precision_den + recall_den > 0, 2 * tp / (precision_den + recall_den).clamp(min=1), 0.0)
    return float(f1.mean().item())


def cross_entropy(logits, targets) -> float:
    """Mean negative log-likelihood of the targets under softmax(logits)."""
    import torch.nn.functional as F

    return float(F.cross_entropy(logits.float(), targets).item())


@hookimpl
def harness_metrics():
    return [
        MetricSpec("accuracy", accuracy, True, "top-1 accuracy, a fraction in [0, 1]", gate=True),
        MetricSpec("macro-f1", macro_f1, True, "F1 score averaged over classes", gate=True),
        MetricSpec("nll", cross_entropy, False, "mean cross-entropy of the targets (lower is better)"),
    ]
