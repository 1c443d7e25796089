"""Image transforms (``bcml.vision.transforms``, as ``torchvision.transforms``).

``Compose``, ``ToTensor``, ``Normalize``, ``Lambda``, and the CIFAR-10 training recipe's
``RandomCrop(size, padding)`` and ``RandomHorizontalFlip(p)``, and ``Resize`` for PIL images.
Semantics as torchvision documents them: ``ToTensor`` turns a PIL image or an H x W (x C) NumPy
array into a C x H x W float32 tensor, dividing uint8 values by 255 (other dtypes are not
scaled); ``Normalize`` computes ``(x - mean[c]) / std[c]`` per channel of a float tensor
``(..., C, H, W)``, in float32. The random transforms draw from bcml's default generator, so
``bcml.manual_seed`` reproduces them.
"""
import numbers

import numpy as np

from .. import _core
from .._random import gen
from .._tensor import from_numpy
from .._values import flag, setting

__all__ = ["Compose", "ToTensor", "Normalize", "Lambda", "RandomCrop", "RandomHorizontalFlip", "Resize"]

_PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


def _image_module():
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def _is_pil(img):
    Image = _image_module()
    return Image is not None and isinstance(img, Image.Image)


def _as_tensor(a, what):
    from .._engine import _as_tensor as conv
    return conv(np.ascontiguousarray(a), what)


def _check_array(a, fname, argname):
    """An array's values must fit bcml's dtypes and its float32 copy the memory (ValueError)."""
    from .._values import check_size
    check_size(a.shape, 4, fname, argname, "float32")
    if a.dtype.kind == "u" and a.dtype.itemsize == 8 and a.size and a.max() > np.iinfo(np.int64).max:
        raise ValueError("%s(): argument '%s': value cannot be converted to type int64 without overflow (got %d)"
                         % (fname, argname, int(a.max())))


def _uniform():
    """A uniform draw in [0, 1) from this thread's default generator."""
    return (gen(None)._next_u64() >> 11) * (1.0 / (1 << 53))


def _randint(high):
    """A draw of 0 .. high-1 from this thread's default generator."""
    return int(gen(None)._next_u64() % high)


class Compose:
    """Applies ``transforms`` one after the other."""

    def __init__(self, transforms):
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, (list, tuple)):
            raise TypeError("Compose(): argument 'transforms' must be a list of transforms, not %s"
                            % type(transforms).__name__)
        for k, t in enumerate(transforms):
            if not callable(t):
                raise TypeError("Compose(): argument 'transforms' (element %d) must be callable, not %s"
                                % (k, type(t).__name__))
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def _batch(self, images):
        """The transforms applied to a whole uint8 array of images (n, H, W[, C]) at once, when
        every transform can be (ToTensor first, then Normalize); None otherwise."""
        if not self.transforms or type(self.transforms[0]) is not ToTensor:
            return None
        x = images
        for t in self.transforms:
            if type(t) not in (ToTensor, Normalize):
                return None
            x = t._batch(x)
            if x is None:
                return None
        return x

    def __repr__(self):
        return "Compose(\n%s\n)" % "\n".join("    %r" % (t,) for t in self.transforms)


class ToTensor:
    """A PIL image or an H x W (x C) NumPy array as a C x H x W tensor: uint8 values divided by
    255 into float32 [0, 1] (PIL mode "1" counts as 0/255); other dtypes unscaled (as bcml
    converts arrays: floats to float32, integers to int64)."""

    def __call__(self, pic):
        if _is_pil(pic):
            arr = np.asarray(pic)
            if pic.mode == "1":
                arr = arr.astype(np.uint8) * np.uint8(255)
        elif isinstance(pic, np.ndarray):
            if pic.ndim not in (2, 3):
                raise ValueError("ToTensor(): argument 'pic' should be 2/3 dimensional. Got %d dimensions."
                                 % pic.ndim)
            arr = pic
        else:
            raise TypeError("ToTensor(): argument 'pic' should be PIL Image or ndarray. Got %s" % type(pic))
        if arr.dtype.kind not in "biuf":
            raise TypeError("ToTensor(): argument 'pic' must hold numbers, got dtype %s" % arr.dtype)
        _check_array(arr, "ToTensor", "pic")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return _as_tensor(self._scale(arr.transpose(2, 0, 1)), "ToTensor(): argument 'pic'")

    @staticmethod
    def _scale(x):
        if x.dtype == np.uint8:
            return np.divide(x, np.float32(255), dtype=np.float32)   # correctly rounded, as x.float().div(255)
        return x

    def _batch(self, images):
        if images.ndim == 3:
            x = images[:, None]
        elif images.ndim == 4:
            x = images.transpose(0, 3, 1, 2)
        else:
            return None
        return self._scale(x)

    def __repr__(self):
        return "ToTensor()"


def _channel_values(v, argname):
    if isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise TypeError("Normalize(): argument '%s' must be a number or a non-empty sequence of numbers, not %s"
                        % (argname, type(v).__name__))
    return tuple(setting(e, "Normalize", argname) for e in v)


class Normalize:
    """``(tensor - mean[c]) / std[c]`` for every channel c of a float tensor image
    ``(..., C, H, W)``, in float32 (mean and std: one value per channel, or one for all)."""

    def __init__(self, mean, std, inplace=False):
        self.mean = _channel_values(mean, "mean")
        self.std = _channel_values(std, "std")
        self.inplace = flag(inplace, "Normalize", "inplace")
        if any(np.float32(s) == 0 for s in self.std):
            raise ValueError("Normalize(): argument 'std' evaluated to zero after conversion to bcml.float32, "
                             "leading to division by zero.")
        self._m = np.asarray(self.mean, np.float32).reshape(-1, 1, 1)
        self._s = np.asarray(self.std, np.float32).reshape(-1, 1, 1)

    def _check_channels(self, c):
        for name, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, c):
                raise ValueError("Normalize(): argument '%s' has %d values for an image of %d channels"
                                 % (name, len(v), c))

    def __call__(self, tensor):
        if not isinstance(tensor, _core.TensorBase):
            raise TypeError("Normalize(): argument 'tensor' should be a bcml tensor. Got %s" % type(tensor))
        if tensor._dtype_name != "float32":
            raise TypeError("Normalize(): argument 'tensor' should be a float tensor. Got %s" % tensor._dtype_name)
        if tensor.ndim < 3:
            raise ValueError("Normalize(): argument 'tensor': Expected tensor to be a tensor image of size "
                             "(..., C, H, W). Got tensor.size() = %s" % (tuple(tensor.shape),))
        self._check_channels(int(tensor.shape[-3]))
        if tensor.requires_grad:   # through autograd (a new tensor)
            return (tensor - from_numpy(self._m)) / from_numpy(self._s)
        out = self._apply(tensor.numpy())
        if self.inplace:
            np.copyto(tensor.numpy(), out)
            return tensor
        return from_numpy(out)

    def _apply(self, x):
        return np.divide(np.subtract(x, self._m, dtype=np.float32), self._s, dtype=np.float32)

    def _batch(self, x):
        if x.dtype != np.float32 or x.ndim < 3:
            return None
        self._check_channels(x.shape[-3])
        return self._apply(x)

    def __repr__(self):
        return "Normalize(mean=%s, std=%s)" % (list(self.mean), list(self.std))


class Lambda:
    """A user function as a transform."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError("Lambda(): argument 'lambd' should be callable, got %s" % type(lambd).__name__)
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return "Lambda()"


def _pixels(img, fname):
    """(array H x W [x C] or (..., H, W), kind) of a PIL image or a bcml tensor image."""
    if _is_pil(img):
        return np.asarray(img), "pil"
    if isinstance(img, _core.TensorBase):
        if img.ndim < 2:
            raise ValueError("%s(): argument 'img' must be an image (..., H, W), got shape %s"
                             % (fname, tuple(img.shape)))
        return img.detach().numpy(), "tensor"
    raise TypeError("%s(): argument 'img' should be a PIL Image or a bcml tensor. Got %s" % (fname, type(img)))


def _back(arr, kind, img):
    if kind == "pil":
        return _image_module().fromarray(np.ascontiguousarray(arr), mode=img.mode if img.mode in ("L", "RGB", "RGBA", "I", "F") else None)
    return _as_tensor(arr, "img")


def _hw_axes(kind, ndim):
    return (0, 1) if kind == "pil" else (ndim - 2, ndim - 1)


class RandomHorizontalFlip:
    """Flips the image left-right with probability ``p``."""

    def __init__(self, p=0.5):
        self.p = setting(p, "RandomHorizontalFlip", "p", low=0, high=1)

    def __call__(self, img):
        arr, kind = _pixels(img, "RandomHorizontalFlip")
        if _uniform() < self.p:
            return _back(np.flip(arr, axis=_hw_axes(kind, arr.ndim)[1]), kind, img)
        return img

    def __repr__(self):
        return "RandomHorizontalFlip(p=%r)" % self.p


def _size_pair(size, fname, argname):
    if isinstance(size, numbers.Integral) and not isinstance(size, (bool, np.bool_)):
        size = (size, size)
    if isinstance(size, (str, bytes)) or not isinstance(size, (list, tuple)) or len(size) not in (1, 2) or \
            not all(isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) for s in size):
        raise TypeError("%s(): argument '%s' must be an int or a sequence of one or two ints, not %r"
                        % (fname, argname, size))
    size = tuple(int(s) for s in size) * (2 if len(size) == 1 else 1)
    if any(s <= 0 or s > 2 ** 31 for s in size):
        raise ValueError("%s(): argument '%s' must be positive, got %s" % (fname, argname, size))
    return size


class RandomCrop:
    """Crops a random ``size`` (h, w) window, after padding the image by ``padding`` (an int for
    every side, (left/right, top/bottom), or (left, top, right, bottom)) with ``fill`` or by
    ``padding_mode`` "edge", "reflect" or "symmetric" (NumPy's modes of the same names, as
    torchvision's). ``pad_if_needed`` pads an image smaller than ``size`` up to it."""

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        f = "RandomCrop"
        self.size = _size_pair(size, f, "size")
        if padding is not None:
            p = (padding,) if isinstance(padding, numbers.Integral) and not isinstance(padding, bool) else padding
            if isinstance(p, (str, bytes)) or not isinstance(p, (list, tuple)) or len(p) not in (1, 2, 4) or \
                    not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in p):
                raise TypeError("RandomCrop(): argument 'padding' must be an int or a sequence of 1, 2 or 4 ints, "
                                "not %r" % (padding,))
            if any(v < 0 or v > 2 ** 31 for v in p):
                raise ValueError("RandomCrop(): argument 'padding' must be non-negative, got %r" % (padding,))
        self.padding = padding
        self.pad_if_needed = flag(pad_if_needed, f, "pad_if_needed")
        if isinstance(fill, (list, tuple)):
            if not fill:
                raise ValueError("RandomCrop(): argument 'fill' must be a number or one number per channel, got "
                                 "an empty %s" % type(fill).__name__)
            fill = tuple(setting(v, f, "fill") for v in fill)
        else:
            fill = setting(fill, f, "fill")
        self.fill = fill
        if not isinstance(padding_mode, str):
            raise TypeError("RandomCrop(): argument 'padding_mode' must be a str, not %s" % type(padding_mode).__name__)
        if padding_mode not in _PADDING_MODES:
            raise ValueError("RandomCrop(): argument 'padding_mode' should be constant, edge, reflect or symmetric, "
                             "got %r" % padding_mode)
        self.padding_mode = padding_mode

    def _pad(self, arr, kind, left, top, right, bottom):
        if not (left or top or right or bottom):
            return arr
        ax_h, ax_w = _hw_axes(kind, arr.ndim)
        width = [(0, 0)] * arr.ndim
        width[ax_h], width[ax_w] = (top, bottom), (left, right)
        if self.padding_mode != "constant":
            return np.pad(arr, width, mode=self.padding_mode)
        if isinstance(self.fill, tuple):   # one value per channel (PIL colour images)
            ch = arr.ndim - 1 if kind == "pil" else arr.ndim - 3
            if ch < 0 or ch in (ax_h, ax_w) or arr.shape[ch] != len(self.fill):
                raise ValueError("RandomCrop(): argument 'fill' has %d values for an image of shape %s"
                                 % (len(self.fill), arr.shape))
            return np.stack([np.pad(np.take(arr, c, axis=ch), [w for k, w in enumerate(width) if k != ch],
                                    constant_values=v) for c, v in enumerate(self.fill)], axis=ch)
        return np.pad(arr, width, constant_values=self.fill)

    def __call__(self, img):
        arr, kind = _pixels(img, "RandomCrop")
        if self.padding is not None:
            p = (self.padding,) if isinstance(self.padding, numbers.Integral) else tuple(self.padding)
            left, top, right, bottom = (p * 4 if len(p) == 1 else p * 2 if len(p) == 2 else p)
            arr = self._pad(arr, kind, left, top, right, bottom)
        ax_h, ax_w = _hw_axes(kind, arr.ndim)
        th, tw = self.size
        if self.pad_if_needed and arr.shape[ax_w] < tw:
            d = tw - arr.shape[ax_w]
            arr = self._pad(arr, kind, d, 0, d, 0)
        if self.pad_if_needed and arr.shape[ax_h] < th:
            d = th - arr.shape[ax_h]
            arr = self._pad(arr, kind, 0, d, 0, d)
        h, w = arr.shape[ax_h], arr.shape[ax_w]
        if h < th or w < tw:
            raise ValueError("RandomCrop(): argument 'img': Required crop size %s is larger than input image size %s"
                             % ((th, tw), (h, w)))
        i = j = 0
        if (h, w) != (th, tw):
            i, j = _randint(h - th + 1), _randint(w - tw + 1)
        sl = [slice(None)] * arr.ndim
        sl[ax_h], sl[ax_w] = slice(i, i + th), slice(j, j + tw)
        return _back(arr[tuple(sl)], kind, img)

    def __repr__(self):
        return "RandomCrop(size=%s, padding=%r)" % (self.size, self.padding)


_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3}   # PIL's Image.NEAREST, BILINEAR, BICUBIC


class Resize:
    """Resizes a PIL image to ``size`` (h, w), or its shorter side to ``size`` (an int), keeping the
    aspect ratio, with PIL's ``interpolation`` ("bilinear", "nearest" or "bicubic"). bcml applies
    it to PIL images (before ToTensor) only."""

    def __init__(self, size, interpolation="bilinear"):
        if isinstance(size, numbers.Integral) and not isinstance(size, (bool, np.bool_)):
            if size <= 0 or size > 2 ** 31:
                raise ValueError("Resize(): argument 'size' must be positive, got %d" % size)
            self.size = int(size)
        else:
            self.size = _size_pair(size, "Resize", "size")
        mode = getattr(interpolation, "value", interpolation)
        if not isinstance(mode, str):
            raise TypeError("Resize(): argument 'interpolation' must be a str, not %s" % type(interpolation).__name__)
        if mode not in _RESAMPLE:
            raise ValueError("Resize(): argument 'interpolation' must be one of %s, got %r" % (sorted(_RESAMPLE), mode))
        self.interpolation = mode

    def __call__(self, img):
        if not _is_pil(img):
            raise TypeError("Resize(): argument 'img' must be a PIL Image (bcml resizes PIL images only: apply "
                            "Resize before ToTensor), got %s" % type(img))
        w, h = img.size
        if isinstance(self.size, int):
            short, long_ = (w, h) if w <= h else (h, w)
            new_short, new_long = self.size, int(self.size * long_ / short)
            nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
        else:
            nh, nw = self.size
        if (nw, nh) == (w, h):
            return img
        return img.resize((nw, nh), _RESAMPLE[self.interpolation])

    def __repr__(self):
        return "Resize(size=%r, interpolation=%s)" % (self.size, self.interpolation)
