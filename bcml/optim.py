"""bcml.optim: SGD and Adam with torch.optim's arguments and update rules; each step is one
C call over every parameter."""
import math
import numbers

import numpy as np

from . import _core
from ._tensor import Tensor, from_numpy
from . import _values
from ._values import FLT_MAX

_PLAIN = (float, int)  # bool excluded: type(True) is bool


def _check(name, value, low=0.0, allow_equal=True, argname=None, fname=None):
    """A setting as float: a real number >= low, finite and within float32's range (the C
    update computes in float32: 1e39 would become inf and train on inf/NaN). The message
    names the optimizer (fname) and the argument (argname, default name)."""
    pre = "%s: " % fname if fname else ""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):  # a wrong type
        raise TypeError("%sInvalid %s value: %s (%s must be a number)" % (pre, name, type(value).__name__,
                                                                         argname or name))
    if value != value:  # NaN
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
    if not isinstance(betas, (tuple, list)):
        raise TypeError("%s: Invalid beta parameters: %s (betas must be a pair of numbers in [0, 1))"
                        % (fname, type(betas).__name__))
    if (len(betas) != 2 or
            not all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in betas)):
        raise ValueError("%s: Invalid beta parameters: %r (betas must be a pair of numbers in [0, 1))"
                         % (fname, betas))
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:
            raise ValueError("%s: Invalid beta parameters: %r (betas: index %d must lie in [0, 1), got %r)"
                             % (fname, tuple(betas), i, b))
    return float(betas[0]), float(betas[1])


def _mark_step(opt):
    """Inside bcml.compile's recording of a step, records this optimizer step as a step of the
    plan and pauses the recording (the caller unpauses with the returned flag); else None."""
    from . import _compile
    rec = _compile.current()
    if rec is None:
        return None
    i = rec.optimizer_index(opt)
    if i is None or not _core.record_mark_optim(i):
        return None
    return _core.record_pause(True)


class Optimizer:
    """Base class: param_groups (list of dicts with 'params' and settings), zero_grad, state_dict."""

    def __init__(self, params, defaults):
        import collections.abc
        if isinstance(params, (Tensor, str, bytes, dict, np.ndarray)) or \
                not isinstance(params, collections.abc.Iterable):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "not %s" % type(params).__name__)
        if not isinstance(defaults, dict):
            raise TypeError("%s(): argument 'defaults' must be a dict of settings, not %s"
                            % (type(self).__name__, type(defaults).__name__))
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list (argument 'params')")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.defaults = dict(defaults)
        self.param_groups = []
        for g in params:
            self.add_param_group(g)

    def add_param_group(self, group):
        if not isinstance(group, dict):
            raise TypeError("add_param_group(): argument 'group' must be a dict with 'params', not %s"
                            % type(group).__name__)
        group = dict(group)
        if "params" not in group:
            raise ValueError("add_param_group(): argument 'group' must have the key 'params' (the parameters)")
        ps = group["params"]
        if not isinstance(ps, Tensor) and (isinstance(ps, (str, bytes, dict)) or not hasattr(ps, "__iter__")):
            raise TypeError("add_param_group(): group['params'] must be a tensor or an iterable of tensors, not %s"
                            % type(ps).__name__)
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
        if set_to_none is not True:
            set_to_none = _values.flag(set_to_none, "zero_grad", "set_to_none")
        for g in self.param_groups:
            for p in g["params"]:
                p._zero_grad(set_to_none)   # a step of its own inside bcml.compile

    # ---- state dicts (as torch.optim's) ------------------------------------------------------
    # A subclass lists its per-parameter state: _STATE maps PyTorch's key (e.g. "exp_avg") to the
    # group's private list holding it (e.g. "_m"); _STEP is the key of an integer step count
    # kept in the list "_steps", or None.
    _STATE = {}
    _STEP = None

    def state_dict(self):
        """{"state": {i: {name: tensor}}, "param_groups": [{settings..., "params": [i, ...]}]}, as
        torch.optim's: i numbers the parameters across the groups in order, and only parameters
        that have state (they were updated with momentum or by Adam) appear under "state". The
        tensors are the optimizer's own (not copies); a step count is a 0-d int64 tensor (PyTorch:
        float32), exact for any count. Save it with bcml.save and restore it with
        load_state_dict(bcml.load(path))."""
        state, groups, i = {}, [], 0
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params" and not k.startswith("_")}
            packed["params"] = list(range(i, i + len(g["params"])))
            groups.append(packed)
            for j in range(len(g["params"])):
                s = {name: g[lst][j] for name, lst in self._STATE.items() if g[lst][j] is not None}
                if s:
                    if self._STEP is not None:
                        s = dict({self._STEP: from_numpy(np.array(g["_steps"][j], dtype=np.int64))}, **s)
                    state[i + j] = s
            i += len(g["params"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restores a state dict from state_dict() (of this optimizer class; one loaded with
        bcml.load, or PyTorch's with its tensors). The groups' settings (lr, ...) are taken from
        it; the state tensors are copied. Raises ValueError, as PyTorch does, when the number of
        groups or of parameters in a group differs, and when a state tensor's shape differs from
        its parameter's; nothing is changed then."""
        what = "%s.load_state_dict" % type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise TypeError("%s: state_dict must be a dict with 'state' and 'param_groups' (from "
                            "Optimizer.state_dict()), got %s" % (what, type(state_dict).__name__))
        saved_groups, state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not all(
                isinstance(g, dict) and isinstance(g.get("params"), (list, tuple)) for g in saved_groups):
            raise TypeError("%s: state_dict['param_groups'] must be a list of dicts with 'params'" % what)
        if not isinstance(state, dict):
            raise TypeError("%s: state_dict['state'] must be a dict, got %s" % (what, type(state).__name__))
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(sg["params"]) != len(g["params"]) for sg, g in zip(saved_groups, self.param_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")
        index = {}  # saved parameter id -> (group, position)
        for gi, sg in enumerate(saved_groups):
            for j, pid in enumerate(sg["params"]):
                if isinstance(pid, bool) or not isinstance(pid, (int, np.integer)) or int(pid) in index:
                    raise ValueError("%s: param_groups[%d]['params'] must list distinct parameter indices, "
                                     "got %r" % (what, gi, pid))
                index[int(pid)] = (gi, j)
        new_lists = [{lst: [None] * len(g["params"]) for lst in self._STATE.values()} for g in self.param_groups]
        if self._STEP is not None:
            for nl, g in zip(new_lists, self.param_groups):
                nl["_steps"] = [0] * len(g["params"])
        new_settings = []
        for gi, (sg, g) in enumerate(zip(saved_groups, self.param_groups)):
            settings = {}
            for k, v in sg.items():
                if k == "params" or k.startswith("_") or k not in g:
                    continue  # settings of other libraries (PyTorch's foreach, fused, ...) are ignored
                old = g[k]
                if isinstance(old, bool):
                    ok = isinstance(v, (bool, np.bool_))
                    v = bool(v) if ok else v
                elif isinstance(old, (tuple, list)):
                    ok = isinstance(v, (tuple, list)) and len(v) == len(old) and all(
                        isinstance(x, numbers.Real) and not isinstance(x, bool) for x in v)
                    v = tuple(v) if ok and isinstance(old, tuple) else v
                elif isinstance(old, numbers.Real):
                    ok = isinstance(v, numbers.Real) and not isinstance(v, bool)
                else:
                    ok = True
                if not ok:
                    raise ValueError("%s: param_groups[%d][%r] must be like %r, got %r" % (what, gi, k, old, v))
                settings[k] = v
            new_settings.append(settings)
        for pid, s in state.items():
            key = int(pid) if isinstance(pid, (int, np.integer)) and not isinstance(pid, bool) else None
            if key not in index:
                raise ValueError("%s: state_dict['state'] has an entry for parameter %r, which no parameter "
                                 "group lists" % (what, pid))
            gi, j = index[key]
            if not isinstance(s, dict):
                raise TypeError("%s: state of parameter %d must be a dict, got %s" % (what, key, type(s).__name__))
            settings = dict(self.param_groups[gi], **new_settings[gi])
            self._load_param_state(new_lists[gi], j, key, s, self.param_groups[gi]["params"][j], settings, what)
        for g, nl, settings in zip(self.param_groups, new_lists, new_settings):
            g.update(settings)
            for lst, values in nl.items():
                g[lst][:] = values  # the same list objects: replayed epochs hold them

    def _load_param_state(self, lists, j, key, s, p, settings, what):
        needed = self._needed_state(settings) if s else ()
        unknown = sorted(set(s) - set(self._STATE) - ({self._STEP} if self._STEP else set()))
        if unknown:
            raise ValueError("%s: state of parameter %d has %s, which %s does not use (a state dict of "
                             "another optimizer?)" % (what, key, unknown, type(self).__name__))
        for name in needed:
            if s.get(name) is None:
                raise ValueError("%s: state of parameter %d lacks %r" % (what, key, name))
        for name, lst in self._STATE.items():
            v = s.get(name)
            if v is None:
                continue
            if isinstance(v, Tensor):
                a = v.detach().numpy()
            elif hasattr(v, "detach") and hasattr(v, "numpy"):  # a PyTorch tensor
                a = v.detach().cpu().numpy()
            elif isinstance(v, np.ndarray):
                a = v
            else:
                raise TypeError("%s: state %r of parameter %d must be a tensor, got %s"
                                % (what, name, key, type(v).__name__))
            if a.dtype.kind != "f":
                raise TypeError("%s: state %r of parameter %d must be a floating tensor, got dtype %s"
                                % (what, name, key, a.dtype))
            if tuple(a.shape) != tuple(p.shape):
                raise ValueError("%s: state %r of parameter %d has shape %s, but the parameter has shape %s"
                                 % (what, name, key, tuple(a.shape), tuple(p.shape)))
            lists[lst][j] = from_numpy(np.array(a, dtype=np.float32, order="C", copy=True))
        if self._STEP is not None and s.get(self._STEP) is not None:
            v = s[self._STEP]
            if hasattr(v, "detach") and hasattr(v, "numpy"):
                v = v.detach().numpy() if isinstance(v, Tensor) else v.detach().cpu().numpy()
            a = np.asarray(v)
            ok = a.size == 1 and a.dtype.kind in "iuf" and np.isfinite(a).all() and a.reshape(()) >= 0 \
                and float(a.reshape(())) == int(a.reshape(())) and int(a.reshape(())) <= 2 ** 63 - 1
            if not ok:
                raise ValueError("%s: %r of parameter %d must be a non-negative integer, got %r"
                                 % (what, self._STEP, key, v))
            lists["_steps"][j] = int(a.reshape(()))

    def _needed_state(self, settings):
        """The state names a parameter with state must have under these settings."""
        return ()

    def _closure(self, closure):
        if closure is None:
            return None
        if not callable(closure):
            raise TypeError("step(): argument 'closure' must be a function (that recomputes the loss) or None, "
                            "not %s" % type(closure).__name__)
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
        from ._values import flag
        nesterov, maximize = flag(nesterov, "SGD", "nesterov"), flag(maximize, "SGD", "maximize")
        self._opts(dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize))
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    _STATE = {"momentum_buffer": "_bufs"}

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
        paused = _mark_step(self)
        try:
            for g in self.param_groups:
                _core.sgd_step(g["params"], g["_bufs"], *self._opts(g))
        finally:
            if paused is not None:
                _core.record_pause(paused)
        return loss

    @property
    def state(self):
        return {p: {"momentum_buffer": b} for g in self.param_groups for p, b in zip(g["params"], g["_bufs"])}


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, maximize=False)
    (weight decay added to the gradient, as torch.optim.Adam does)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
                 maximize=False):
        from ._values import flag
        amsgrad, maximize = flag(amsgrad, "Adam", "amsgrad"), flag(maximize, "Adam", "maximize")
        self._opts(dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize))
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    _STATE = {"exp_avg": "_m", "exp_avg_sq": "_v", "max_exp_avg_sq": "_vmax"}
    _STEP = "step"

    def _needed_state(self, settings):
        return ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if settings.get("amsgrad") else ())

    def _init_group_state(self, group):
        n = len(group["params"])
        group["_m"], group["_v"], group["_vmax"], group["_steps"] = [None] * n, [None] * n, [None] * n, [0] * n

    def step(self, closure=None):
        loss = self._closure(closure)
        paused = _mark_step(self)
        try:
            for g in self.param_groups:
                _core.adam_step(g["params"], g["_m"], g["_v"], g["_vmax"], g["_steps"], *self._opts(g))
        finally:
            if paused is not None:
                _core.record_pause(paused)
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
        """Multiplies every group's lr by gamma every step_size epochs (as torch's StepLR)."""

        def __init__(self, optimizer, step_size, gamma=0.1):
            from . import _values
            if not isinstance(getattr(optimizer, "param_groups", None), list):
                raise TypeError("StepLR(): argument 'optimizer' must be an optimizer (with param_groups), not %s"
                                % type(optimizer).__name__)
            step_size = _values.index(step_size, "StepLR", "step_size")
            if step_size < 1:
                raise ValueError("StepLR(): argument 'step_size' must be a positive int, got %d" % step_size)
            gamma = _values.setting(gamma, "StepLR", "gamma")
            self.optimizer, self.step_size, self.gamma = optimizer, step_size, gamma
            self.last_epoch = 0
            self.base_lrs = [g["lr"] for g in optimizer.param_groups]

        def step(self):
            self.last_epoch += 1
            for g, base in zip(self.optimizer.param_groups, self.base_lrs):
                g["lr"] = base * self.gamma ** (self.last_epoch // self.step_size)

        def get_last_lr(self):
            return [g["lr"] for g in self.optimizer.param_groups]
