"""Hooks as PyTorch has them: Tensor.register_hook and nn.Module's forward / backward hooks.

Backward hooks run inside the C backward engine (csrc/core/autograd.c: bcml_hook_add), which
calls them through csrc/python/hooks_py.c with the GIL held. A module's full backward hook is
built as torch builds it: the module's tensor inputs and outputs pass through identity ops whose
gradient hooks collect grad_output and, once the inputs' gradients are known, call the hook with
(module, grad_input, grad_output).

Differences from PyTorch (documented in the README):
- ``register_backward_hook`` (deprecated in PyTorch) behaves as ``register_full_backward_hook``:
  grad_input holds the gradients with respect to the module's inputs. PyTorch hands it the
  inputs of the last autograd node of the forward instead (for Linear: bias, input and weight^T)
  and warns when the forward has several nodes.
- A module with several tensor inputs that require grad calls its full backward hooks when the
  last of their gradients is computed; a hook may then replace the gradient of that input only
  (returning a changed gradient for another input raises RuntimeError). Modules with one tensor
  input, the usual case, behave as in PyTorch.
- The identity ops show as grad_fn "reshape" (PyTorch's BackwardHookFunctionBackward).
"""
import collections
import functools
import itertools
import warnings
import weakref

from . import _core

_ids = itertools.count()


class RemovableHandle:
    """The handle a ``register_*hook`` call returns (as torch.utils.hooks.RemovableHandle):
    ``remove()`` unregisters the hook; also a context manager that removes it on exit. The handle
    keeps no hook or tensor alive (it holds weak references to the hook tables)."""

    def __init__(self, hooks_dict, *extra_dicts):
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.extra_dict_refs = tuple(weakref.ref(d) for d in extra_dicts)
        self.id = next(_ids)

    def remove(self):
        for ref in (self.hooks_dict_ref,) + self.extra_dict_refs:
            d = ref()
            if d is not None:
                d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def __repr__(self):
        return "<RemovableHandle id=%d>" % self.id


def _check_hook(hook, fname):
    if not callable(hook):
        raise TypeError("%s(): argument 'hook' must be callable, not %s" % (fname, type(hook).__name__))


def _flag(v, fname, argname):
    if not isinstance(v, bool):
        raise TypeError("%s(): argument '%s' must be a bool, not %s" % (fname, argname, type(v).__name__))
    return v


VERSION = [0]   # bumped by every registration (bcml.compile looks again for hooks when it changes)


def _add(d, hook, prepend, *extra):
    VERSION[0] += 1
    h = RemovableHandle(d, *extra)
    d[h.id] = hook
    if prepend:
        d.move_to_end(h.id, last=False)
    return h


def tensor_register_hook(t, hook):
    """Tensor.register_hook: hook(grad) is called with the gradient of t when backward computes
    it; a tensor it returns replaces the gradient (for a leaf: before it is added into .grad)."""
    _check_hook(hook, "register_hook")
    return _add(_core._tensor_hooks(t, True), hook, False)


def _identity(t):
    """A tensor equal to t, made by an op (so that gradient hooks on it see t's gradient)."""
    from ._tensor import _reshape
    return _reshape(t, tuple(t.shape))


def _module_hooks(module, name):
    d = module.__dict__.get(name)
    if d is None:   # a Module unpickled from an older bcml, or one whose __init__ was skipped
        d = collections.OrderedDict()
        object.__setattr__(module, name, d)
    return d


def register_forward_pre_hook(module, hook, prepend=False, with_kwargs=False):
    _check_hook(hook, "register_forward_pre_hook")
    prepend = _flag(prepend, "register_forward_pre_hook", "prepend")
    with_kwargs = _flag(with_kwargs, "register_forward_pre_hook", "with_kwargs")
    kw = _module_hooks(module, "_forward_pre_hooks_with_kwargs")
    h = _add(_module_hooks(module, "_forward_pre_hooks"), hook, prepend, kw)
    if with_kwargs:
        kw[h.id] = True
    return h


def register_forward_hook(module, hook, prepend=False, with_kwargs=False, always_call=False):
    _check_hook(hook, "register_forward_hook")
    prepend = _flag(prepend, "register_forward_hook", "prepend")
    with_kwargs = _flag(with_kwargs, "register_forward_hook", "with_kwargs")
    always_call = _flag(always_call, "register_forward_hook", "always_call")
    kw = _module_hooks(module, "_forward_hooks_with_kwargs")
    always = _module_hooks(module, "_forward_hooks_always_called")
    h = _add(_module_hooks(module, "_forward_hooks"), hook, prepend, kw, always)
    if with_kwargs:
        kw[h.id] = True
    if always_call:
        always[h.id] = True
    return h


def register_full_backward_hook(module, hook, prepend=False, fname="register_full_backward_hook"):
    _check_hook(hook, fname)
    prepend = _flag(prepend, fname, "prepend")
    return _add(_module_hooks(module, "_backward_hooks"), hook, prepend)


def register_backward_hook(module, hook):
    warnings.warn("register_backward_hook is deprecated (as in PyTorch); in bcml it behaves as "
                  "register_full_backward_hook: grad_input holds the gradients with respect to the module's "
                  "inputs", FutureWarning, stacklevel=3)
    return register_full_backward_hook(module, hook, fname="register_backward_hook")


def has_hooks(module):
    d = module.__dict__
    return bool(d.get("_forward_pre_hooks") or d.get("_forward_hooks") or d.get("_backward_hooks"))


def call(module, args, kwargs):
    """Module.__call__ for a module with hooks (PyTorch's order: forward pre-hooks, backward
    hook's input identities, forward, forward hooks, backward hook's output identities)."""
    from ._tensor import Tensor
    d = module.__dict__
    pre, fwd, bwd = d.get("_forward_pre_hooks"), d.get("_forward_hooks"), d.get("_backward_hooks")
    _core._record_taint("%s has forward or backward hooks (Python code a replay would skip)" % type(module).__name__)
    pre_kw = d.get("_forward_pre_hooks_with_kwargs") or {}
    for hid, hook in list((pre or {}).items()):
        if hid in pre_kw:
            r = hook(module, args, kwargs)
            if r is not None:
                if not (isinstance(r, tuple) and len(r) == 2):
                    raise RuntimeError("forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                                       "but got %r." % (r,))
                args, kwargs = r
        else:
            r = hook(module, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
    bw = None
    if bwd and _core.is_grad_enabled():
        bw = _BackwardHook(module, bwd)
        args = bw.setup_input(args, Tensor)
    try:
        result = module.forward(*args, **kwargs)
    except BaseException:
        always = d.get("_forward_hooks_always_called") or {}
        for hid, hook in list((fwd or {}).items()):
            if hid in always:
                try:
                    _call_forward_hook(module, d, hid, hook, args, kwargs, None)
                except Exception as e:   # as PyTorch: the forward's exception wins
                    warnings.warn("forward hook with always_call=True raised an exception that was "
                                  "ignored: %r" % (e,))
        raise
    for hid, hook in list((fwd or {}).items()):
        r = _call_forward_hook(module, d, hid, hook, args, kwargs, result)
        if r is not None:
            result = r
    if bw is not None:
        result = bw.setup_output(result, Tensor)
    return result


def _call_forward_hook(module, d, hid, hook, args, kwargs, result):
    if hid in (d.get("_forward_hooks_with_kwargs") or {}):
        return hook(module, args, kwargs, result)
    return hook(module, args, result)


class _BackwardHook:
    """One call of a module with full backward hooks (torch.utils.hooks.BackwardHook's role)."""

    def __init__(self, module, hooks):
        self.module = module
        self.hooks = hooks
        self.n_inputs = 0
        self.input_idx = None     # positions of the inputs that require grad (None: none does)
        self.grad_inputs = {}
        self.n_outputs = 0
        self.grad_outputs = []
        self.fired = False

    def _user_hooks(self, grad_input):
        """Calls every hook (in order); returns the final grad_input tuple."""
        for hook in list(self.hooks.values()):
            res = hook(self.module, grad_input, tuple(self.grad_outputs))
            if res is None:
                continue
            if not isinstance(res, (tuple, list)):
                raise TypeError("backward hook %s of %s must return None or a tuple of gradients, got %s"
                                % (getattr(hook, "__name__", hook), type(self.module).__name__, type(res).__name__))
            if len(res) != len(grad_input):
                raise RuntimeError("Backward hook returned an invalid number of grad_input, got %d, but expected %d"
                                   % (len(res), len(grad_input)))
            grad_input = tuple(res)
        return grad_input

    def setup_input(self, args, Tensor):
        self.n_inputs = len(args)
        idx = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        if not idx:
            return args
        self.input_idx = idx
        new = list(args)
        for i in idx:
            new[i] = _identity(args[i])
            _add(_core._tensor_hooks(new[i], True), functools.partial(self._input_grad, i), False)
        return tuple(new)

    def _input_grad(self, i, grad):
        self.grad_inputs[i] = grad
        if len(self.grad_inputs) < len(self.input_idx) or self.fired:
            return None
        self.fired = True
        packed = tuple(self.grad_inputs.get(k) for k in range(self.n_inputs))
        res = self._user_hooks(packed)
        for k in self.input_idx:
            if k != i and res[k] is not packed[k]:
                raise RuntimeError("backward hook of %s replaced the gradient of input %d, computed before the one of "
                                   "input %d: bcml can replace only the gradient computed last when a module has "
                                   "several inputs that require grad" % (type(self.module).__name__, k, i))
        return res[i]

    def setup_output(self, result, Tensor):
        is_tuple = isinstance(result, tuple)
        outs = result if is_tuple else (result,)
        self.n_outputs = len(outs)
        self.grad_outputs = [None] * len(outs)
        idx = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.requires_grad]
        if not idx:
            return result
        new = list(outs)
        for i in idx:
            new[i] = _identity(outs[i])
            _add(_core._tensor_hooks(new[i], True), functools.partial(self._output_grad, i), False)
        return tuple(new) if is_tuple else new[0]

    def _output_grad(self, i, grad):
        self.grad_outputs[i] = grad
        if self.input_idx is None and not self.fired:
            self.fired = True
            warnings.warn("Full backward hook is firing when gradients are computed with respect to module outputs "
                          "since no inputs require gradients.", UserWarning, stacklevel=2)
            res = self._user_hooks((None,) * self.n_inputs)
            if any(g is not None for g in res):
                raise RuntimeError("Backward hook for Modules where no input requires gradient should always "
                                   "return None or None for all gradients.")
        return None
