"""Tiny fixed-weight models whose predictions are set by hand, for the metrics and helpers tests.

Each sample's x holds two blocks of logits, h1's then h2's; h1 and h2 are LogisticRegression
models whose weight selects their block, so their predicted labels are chosen per sample.

The hand-checked case (3 classes, 8 samples):

    row        0  1  2  3  4  5  6  7
    y          0  1  2  0  1  2  0  1
    h1 label   0  1  2  1  1  0  0  2     right: 0 1 2 4 6   wrong: 3 5 7
    h2 label   0  2  2  0  1  0  1  2     right: 0 2 3 4     wrong: 1 5 6 7

h1 accuracy 5/8, h2 accuracy 4/8; both right {0, 2, 4}: BTC = 3/5; both wrong {5, 7}:
BEC = 2/4 (h2's errors; BCML's h1 normalisation 2/3); h1 right and h2 wrong (incompatible)
{1 (class 1), 6 (class 0)}. By class: class 0 = rows {0, 3, 6}: h1 2/3 (error 3), h2 2/3
(error 6); class 1 = rows {1, 4, 7}: h1 2/3 (error 7), h2 1/3 (errors 1, 7); class 2 =
rows {2, 5}: h1 1/2 (error 5), h2 1/2 (error 5).
"""
import numpy as np

import bcml
from bcml.models import LogisticRegression

Y = np.array([0, 1, 2, 0, 1, 2, 0, 1], dtype=np.int64)
P1 = np.array([0, 1, 2, 1, 1, 0, 0, 2], dtype=np.int64)
P2 = np.array([0, 2, 2, 0, 1, 0, 1, 2], dtype=np.int64)


def selector(block, width, blocks=2):
    """LogisticRegression(blocks * width, width) returning the logits of the given block of x."""
    m = LogisticRegression(blocks * width, width)
    w = np.zeros((width, blocks * width), np.float32)
    w[:, block * width:(block + 1) * width] = np.eye(width, dtype=np.float32)
    m.load_state_dict({"linear.weight": w, "linear.bias": np.zeros(width, np.float32)})
    return m


def logits_for(labels_per_model, width):
    """x whose block k holds 2 * onehot(labels_per_model[k])."""
    eye = np.eye(width, dtype=np.float32)
    return np.concatenate([2.0 * eye[p] for p in labels_per_model], axis=1)


def hand_case():
    """(h1, h2, X, Y) of the documented case."""
    return selector(0, 3), selector(1, 3), logits_for([P1, P2], 3), Y.copy()


class BinarySelector(bcml.nn.Module):
    """Binary model: sigmoid of x[:, column], shape (B,) (flat=True) or (B, 1)."""

    def __init__(self, column, columns=2, flat=True):
        super().__init__()
        self.linear = bcml.nn.Linear(columns, 1)
        w = np.zeros((1, columns), np.float32)
        w[0, column] = 1.0
        self.load_state_dict({"linear.weight": w, "linear.bias": np.zeros(1, np.float32)})
        self.flat = flat

    def forward(self, x):
        p = self.linear(x).sigmoid()
        return p.reshape(-1) if self.flat else p
