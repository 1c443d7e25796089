"""The example notebooks' models. Every classifier returns the triple
(logits, softmax(logits), log_softmax(logits)) of shape (B, C) (SPEC section 2); a model built
with one output returns the sigmoid probability of shape (B, 1) instead (a binary model)."""
from . import nn
from .nn import functional as F


def _triple(logits):
    if logits.shape[-1] == 1:
        return F.sigmoid(logits)
    return logits, F.softmax(logits, dim=-1), F.log_softmax(logits, dim=-1)


class LogisticRegression(nn.Module):
    """One Linear layer (input_dim -> output_dim)."""

    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x):
        return _triple(self.linear(x))


class MLPClassifier(nn.Module):
    """Linear layers of sizes input_size -> hidden_sizes... -> num_classes with ReLU between them.
    State-dict keys: layers.0.weight, layers.2.weight, ... (an nn.Sequential named `layers`)."""

    def __init__(self, input_size, num_classes, hidden_sizes=(50, 10)):
        super().__init__()
        sizes = [input_size] + list(hidden_sizes) + [num_classes]
        mods = []
        for i in range(len(sizes) - 1):
            mods.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                mods.append(nn.ReLU())
        self.layers = nn.Sequential(*mods)

    def forward(self, x):
        return _triple(self.layers(x))
