"""bcml.optim: SGD and Adam with torch.optim's arguments and update rules; each step is one
C call over every parameter."""
import math
import numbers

from . import _core
from ._tensor import Tensor
from ._values import FLT_MAX

_PLAIN = (float, int)  # bool excluded: type(True) is bool


def _check(name, value, low=0.0, allow_equal=True, argname=None, fname=None):
    """A setting as float: a real number >= low, finite and within float32's range (the C
    update computes in float32: 1e39 would become inf and train on inf/NaN). The message
    names the optimizer (fname) and the argument (argname, default name)."""
    pre = "%s: " % fname if fname else ""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or value != value:  # NaN
        raise ValueError("%sInvalid %s value: %r (%s must be a number)" % (pre, name, value, argname or name))
    if value < low or (not allow_equal and value == low):
        raise ValueError("%sInvalid %s value: %r (%s must be >= %r)" % (pre, name, value, argname or name, low))
    try:
        f = float(value)
    except OverflowError:
        f = math.inf
    if not abs(f) <= FLT_MAX:
        raise ValueError("%sInvalid %s value: %r (%s must be finite and within float32's range, "
                         "|value| <= %g)" % (pre, name, value, argname or name, FLT_MAX))
    return f


def _check_betas(betas, fname):
    if (not isinstance(betas, (tuple, list)) or len(betas) != 2 or
            not all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in betas)):
        raise ValueError("%s: Invalid beta parameters: %r (betas must be a pair of numbers in [0, 1))"
                         % (fname, betas))
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:
            raise ValueError("%s: Invalid beta parameters: %r (betas: index %d must lie in [0, 1), got %r)"
                             % (fname, tuple(betas), i, b))
    return float(betas[0]), float(betas[1])


class Optimizer:
    """Base class: param_groups (list of dicts with 'params' and settings), zero_grad, state_dict."""

    def __init__(self, params, defaults):
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.defaults = dict(defaults)
        self.param_groups = []
        for g in params:
            self.add_param_group(g)

    def add_param_group(self, group):
        group = dict(group)
        ps = group["params"]
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        for i, p in enumerate(ps):
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but params[%d] is %s" % (i, type(p).__name__))
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        group["params"] = ps
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._init_group_state(group)
        self.param_groups.append(group)

    def _init_group_state(self, group):
        pass

    def zero_grad(self, set_to_none=True):
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def _closure(self, closure):
        if closure is None:
            return None
        from ._autograd import enable_grad
        with enable_grad():
            return closure()

    def __repr__(self):
        s = type(self).__name__ + " ("
        for i, g in enumerate(self.param_groups):
            s += "\nParameter Group %d" % i
            for k in sorted(g):
                if not k.startswith("_") and k != "params":
                    s += "\n    %s: %s" % (k, g[k])
        return s + "\n)"


class SGD(Optimizer):
    """SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False)."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 maximize=False):
        self._opts(dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize))
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    @classmethod
    def _opts(cls, g):
        """(lr, momentum, dampening, weight_decay, nesterov, maximize) of a group, checked (read
        at every step, so edits of param_groups are checked too). Plain in-range numbers take
        a path with no Python call (a step costs a constant number of calls)."""
        lr, mom, damp, wd = g["lr"], g["momentum"], g["dampening"], g["weight_decay"]
        if (type(lr) in _PLAIN and type(mom) in _PLAIN and type(damp) in _PLAIN and type(wd) in _PLAIN and
                0.0 <= lr <= FLT_MAX and 0.0 <= mom <= FLT_MAX and -FLT_MAX <= damp <= FLT_MAX and
                0.0 <= wd <= FLT_MAX):
            return float(lr), float(mom), float(damp), float(wd), bool(g["nesterov"]), bool(g["maximize"])
        f = cls.__name__
        return (_check("learning rate", lr, argname="lr", fname=f), _check("momentum", mom, fname=f),
                _check("dampening", damp, low=-math.inf, fname=f),
                _check("weight_decay", wd, fname=f), bool(g["nesterov"]), bool(g["maximize"]))

    def _init_group_state(self, group):
        group["_bufs"] = [None] * len(group["params"])

    def step(self, closure=None):
        loss = self._closure(closure)
        for g in self.param_groups:
            _core.sgd_step(g["params"], g["_bufs"], *self._opts(g))
        return loss

    @property
    def state(self):
        return {p: {"momentum_buffer": b} for g in self.param_groups for p, b in zip(g["params"], g["_bufs"])}


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, maximize=False)
    (weight decay added to the gradient, as torch.optim.Adam does)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
                 maximize=False):
        self._opts(dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize))
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _init_group_state(self, group):
        n = len(group["params"])
        group["_m"], group["_v"], group["_vmax"], group["_steps"] = [None] * n, [None] * n, [None] * n, [0] * n

    def step(self, closure=None):
        loss = self._closure(closure)
        for g in self.param_groups:
            _core.adam_step(g["params"], g["_m"], g["_v"], g["_vmax"], g["_steps"], *self._opts(g))
        return loss

    @classmethod
    def _opts(cls, g):
        """(lr, beta1, beta2, eps, weight_decay, amsgrad, maximize) of a group, checked (plain
        in-range numbers: no Python call, as in SGD._opts)."""
        lr, betas, eps, wd = g["lr"], g["betas"], g["eps"], g["weight_decay"]
        if (type(lr) in _PLAIN and type(eps) in _PLAIN and type(wd) in _PLAIN and type(betas) is tuple and
                len(betas) == 2 and type(betas[0]) in _PLAIN and type(betas[1]) in _PLAIN and
                0.0 <= lr <= FLT_MAX and 0.0 <= eps <= FLT_MAX and 0.0 <= wd <= FLT_MAX and
                0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            return (float(lr), float(betas[0]), float(betas[1]), float(eps), float(wd), bool(g["amsgrad"]),
                    bool(g["maximize"]))
        f = cls.__name__
        b1, b2 = _check_betas(betas, f)
        return (_check("learning rate", lr, argname="lr", fname=f), b1, b2,
                _check("epsilon", eps, argname="eps", fname=f),
                _check("weight_decay", wd, fname=f), bool(g["amsgrad"]), bool(g["maximize"]))

    @property
    def state(self):
        return {p: {"step": s, "exp_avg": m, "exp_avg_sq": v}
                for g in self.param_groups
                for p, m, v, s in zip(g["params"], g["_m"], g["_v"], g["_steps"])}


class lr_scheduler:  # namespace, as torch.optim.lr_scheduler
    class StepLR:
        def __init__(self, optimizer, step_size, gamma=0.1):
            self.optimizer, self.step_size, self.gamma = optimizer, int(step_size), float(gamma)
            self.last_epoch = 0
            self.base_lrs = [g["lr"] for g in optimizer.param_groups]

        def step(self):
            self.last_epoch += 1
            for g, base in zip(self.optimizer.param_groups, self.base_lrs):
                g["lr"] = base * self.gamma ** (self.last_epoch // self.step_size)

        def get_last_lr(self):
            return [g["lr"] for g in self.optimizer.param_groups]
