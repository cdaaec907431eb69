"""Targets of spec_lazy_targets' lazy() callables; importing it records that it was imported."""

import os

NOT_CALLABLE = 3
if os.environ.get("SPEC_LAZY_NETS_MARK"):
    open(os.environ["SPEC_LAZY_NETS_MARK"], "a").close()


def good_net(num_classes, input_shape):
    return ("built", num_classes, tuple(input_shape))


def num_classes_only(num_classes):
    return ("built", num_classes)


def positional_only(n, shape):
    raise AssertionError("lazy() must refuse the call before it gets here")


def load_positional(path, rng):
    raise AssertionError("never loaded")


def metric(logits, targets):
    return 1.0
