"""The example notebooks' models. Every classifier returns the triple
(logits, softmax(logits), log_softmax(logits)) of shape (B, C) (SPEC section 2); a model built
with one output returns the sigmoid probability of shape (B, 1) instead (a binary model)."""
import re

from . import _core, _values, nn
from .nn import functional as F


def _size(v, model, argname):
    """A layer size of a model: a positive int within int64 (TypeError / ValueError naming it)."""
    v = _values.index(v, model, argname)
    if v < 1:
        raise ValueError("%s(): argument '%s' must be a positive int, got %d" % (model, argname, v))
    return v


def _input(x, model, ndim, trailing=None):
    """The model's input x: a float32 tensor of ndim dimensions whose trailing sizes are
    `trailing` (None: any), named in the message otherwise."""
    if not isinstance(x, _core.TensorBase):
        raise TypeError("%s.forward(): argument 'x' must be a bcml tensor, not %s" % (model, type(x).__name__))
    if x._dtype_name != "float32":
        raise TypeError("%s.forward(): argument 'x' must be a float32 tensor, got %s" % (model, x._dtype_name))
    if x.ndim != ndim or (trailing is not None and tuple(x.shape)[1:] != tuple(trailing)):
        want = "(B, %s)" % ", ".join(str(t) for t in trailing) if trailing is not None else "%d-D" % ndim
        raise ValueError("%s.forward(): argument 'x' must have shape %s, got %s" % (model, want, tuple(x.shape)))
    return x


def _triple(logits):
    if logits.shape[-1] == 1:
        return F.sigmoid(logits)
    return logits, F.softmax(logits, dim=-1), F.log_softmax(logits, dim=-1)


class LogisticRegression(nn.Module):
    """One Linear layer (input_dim -> output_dim)."""

    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.linear = nn.Linear(_size(input_dim, "LogisticRegression", "input_dim"),
                                _size(output_dim, "LogisticRegression", "output_dim"))

    def forward(self, x):
        return _triple(self.linear(_input(x, "LogisticRegression", 2, (self.linear.in_features,))))


_BCML_MLP_KEY = re.compile(r"^layer-(\d+)\.")


class MLPClassifier(nn.Module):
    """Linear layers of sizes input_size -> hidden_sizes... -> num_classes with ReLU between them.
    State-dict keys: layers.0.weight, layers.2.weight, ... (an nn.Sequential named `layers`)."""

    def __init__(self, input_size, num_classes, hidden_sizes=(50, 10)):
        super().__init__()
        if not isinstance(hidden_sizes, (tuple, list)):
            raise TypeError("MLPClassifier(): argument 'hidden_sizes' must be a tuple or list of layer sizes, not %s"
                            % type(hidden_sizes).__name__)
        sizes = ([_size(input_size, "MLPClassifier", "input_size")]
                 + [_size(h, "MLPClassifier", "hidden_sizes") for h in hidden_sizes]
                 + [_size(num_classes, "MLPClassifier", "num_classes")])
        mods = []
        for i in range(len(sizes) - 1):
            mods.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                mods.append(nn.ReLU())
        self.layers = nn.Sequential(*mods)

    def load_state_dict(self, state_dict, strict=True):
        """As ``Module.load_state_dict``; BCML's key names (``layer-0.weight``, ``layer-1.bias``,
        ...: its i-th Linear layer) are accepted too and mapped to bcml's (``layers.0.weight``,
        ``layers.2.bias``, ...: the Linear layers sit at even positions, ReLU between them)."""
        import collections.abc
        if isinstance(state_dict, collections.abc.Mapping) and any(
                isinstance(k, str) and _BCML_MLP_KEY.match(k) for k in state_dict):
            state_dict = {(_BCML_MLP_KEY.sub(lambda m: "layers.%d." % (2 * int(m.group(1))), k)
                           if isinstance(k, str) else k): v for k, v in state_dict.items()}
        return super().load_state_dict(state_dict, strict)

    def forward(self, x):
        first = next(iter(self.layers._modules.values()))
        return _triple(self.layers(_input(x, "MLPClassifier", 2, (first.in_features,))))


class ConvNet(nn.Module):
    """The MNIST network of BCML's documentation (input (N, 1, 28, 28)): conv 1->10 k5,
    max-pool 2, relu, conv 10->20 k5, dropout2d, max-pool 2, relu, view(-1, 320),
    fc 320->50, relu, dropout, fc 50->10. Keys: conv1, conv2, conv2_drop, fc1, fc2."""

    def __init__(self, num_classes=10):
        super().__init__()
        num_classes = _size(num_classes, "ConvNet", "num_classes")
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, num_classes)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(_input(x, "ConvNet", 4, (1, 28, 28))), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        return _triple(self.fc2(x))


class SixLayerNet(nn.Module):
    """The CIFAR-10 network of BCML's documentation (input (N, 3, 32, 32)): conv 3->18 k3 p1,
    relu, view(-1, 18*32*32), fc 18432->192, three fc 192->192, fc 192->10, relu between.
    Keys: conv1, fc1 ... fc5."""

    def __init__(self, num_classes=10):
        super().__init__()
        num_classes = _size(num_classes, "SixLayerNet", "num_classes")
        self.conv1 = nn.Conv2d(3, 18, kernel_size=3, stride=1, padding=1)
        self.fc1 = nn.Linear(18 * 32 * 32, 192)
        self.fc2 = nn.Linear(192, 192)
        self.fc3 = nn.Linear(192, 192)
        self.fc4 = nn.Linear(192, 192)
        self.fc5 = nn.Linear(192, num_classes)

    def forward(self, x):
        x = F.relu(self.conv1(_input(x, "SixLayerNet", 4, (3, 32, 32))))
        x = x.view(-1, 18 * 32 * 32)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = F.relu(self.fc3(x))
        x = F.relu(self.fc4(x))
        return _triple(self.fc5(x))


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: two 3x3 convolutions with batch norm, and a 1x1
    convolution + batch norm on the shortcut when the shape changes (key `downsample`)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        inplanes, planes = _size(inplanes, "BasicBlock", "inplanes"), _size(planes, "BasicBlock", "planes")
        stride = _size(stride, "BasicBlock", "stride")
        if downsample is not None and not isinstance(downsample, nn.Module):
            raise TypeError("BasicBlock(): argument 'downsample' must be a Module or None, not %s"
                            % type(downsample).__name__)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if downsample is not None:
            self.downsample = downsample
        else:
            self.downsample = None

    def forward(self, x):
        identity = x = _input(x, "BasicBlock", 4)
        if x.shape[1] != self.conv1.in_channels:
            raise ValueError("BasicBlock.forward(): argument 'x' must have %d channels (dim 1), got shape %s"
                             % (self.conv1.in_channels, tuple(x.shape)))
        fused = F._conv_bn_relu(x, self.conv1, self.bn1, True)  # eval mode, no gradient: one op
        out = self.relu(self.bn1(self.conv1(x))) if fused is None else fused
        fused = F._conv_bn_relu(out, self.conv2, self.bn2, False)
        out = self.bn2(self.conv2(out)) if fused is None else fused
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 with torchvision's layout and state-dict key names (7x7 stride-2 stem without
    bias, batch norm, 3x3 stride-2 max-pool, BasicBlocks [2, 2, 2, 2] of 64/128/256/512 planes,
    adaptive average pool, fc), so torchvision weights load 1:1. Returns the triple."""

    def __init__(self, num_classes=10):
        super().__init__()
        num_classes = _size(num_classes, "ResNet18", "num_classes")
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 2)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(BasicBlock(planes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = _input(x, "ResNet18", 4)
        if x.shape[1] != 3:
            raise ValueError("ResNet18.forward(): argument 'x' must be (B, 3, H, W) images, got shape %s"
                             % (tuple(x.shape),))
        fused = F._conv_bn_relu(x, self.conv1, self.bn1, True)  # eval mode, no gradient: one op
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))) if fused is None else fused)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x).flatten(1)
        return _triple(self.fc(x))
