"""Compile astropy model trees into array functions that run on numpy or CuPy.

A gwcs imaging pipeline is a tree of astropy models joined by ``|`` (chain), ``&`` (side by
side) and arithmetic operators. :func:`compile_model` turns a tree built from the common
imaging models into a Python function ``f(xp, *inputs) -> tuple`` of float64 array
operations, so the same pixel-map code runs on the host (``xp = numpy``) or on the device
(``xp = cupy``). Parameters are read once, on the host, when the tree is compiled.

Supported leaves: Shift, Scale, Multiply, Rotation2D, AffineTransformation2D, Polynomial2D,
Mapping, Identity, Const1D, Pix2Sky_TAN / Sky2Pix_TAN, RotateNative2Celestial /
RotateCelestial2Native and gwcs' FITSImagingWCSTransform. Anything else (or parameters with
units, model sets, ``fix_inputs``) raises :class:`UnsupportedModel`, and the caller falls back
to the model's own CPU evaluation.

The formulas follow astropy's (and wcslib's, for the tangent projection) so the results
agree with the models' own evaluation to rounding (about 1e-13 relative).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

CompiledFunction = Callable[..., tuple]

_R2D = 180.0 / math.pi
_D2R = math.pi / 180.0


class UnsupportedModel(Exception):
    """The model tree holds something the compiler does not translate."""


def compile_model(model: Any, inverse: bool = False) -> CompiledFunction:
    """Translate ``model`` (or its inverse) into ``f(xp, *inputs) -> tuple of arrays``.

    Raises
    ------
    UnsupportedModel
        A node of the tree is not one of the supported models.
    """
    from astropy.modeling.core import CompoundModel

    if isinstance(model, CompoundModel):
        if inverse and model.has_user_inverse:
            return compile_model(model.inverse)
        return _compile_compound(model, inverse)
    return _compile_leaf(model, inverse)


def _compile_compound(model: Any, inverse: bool) -> CompiledFunction:
    op = model.op
    if op == "|":
        first, second = (model.right, model.left) if inverse else (model.left, model.right)
        f1, f2 = compile_model(first, inverse), compile_model(second, inverse)
        return lambda xp, *args: f2(xp, *f1(xp, *args))
    if op == "&":
        fl, fr = compile_model(model.left, inverse), compile_model(model.right, inverse)
        nl = model.left.n_outputs if inverse else model.left.n_inputs

        def joined(xp, *args):
            return fl(xp, *args[:nl]) + fr(xp, *args[nl:])

        return joined
    if op in ("+", "-", "*", "/") and not inverse:
        fl, fr = compile_model(model.left), compile_model(model.right)
        combine = {
            "+": lambda a, b: a + b, "-": lambda a, b: a - b,
            "*": lambda a, b: a * b, "/": lambda a, b: a / b,
        }[op]

        def arithmetic(xp, *args):
            return tuple(combine(a, b) for a, b in zip(fl(xp, *args), fr(xp, *args)))

        return arithmetic
    raise UnsupportedModel(f"compound operator {op!r}{' (inverse)' if inverse else ''}")


def _scalar(model: Any, name: str) -> float:
    param = getattr(model, name)
    if getattr(param, "unit", None) is not None:
        raise UnsupportedModel(f"{type(model).__name__}.{name} has units")
    value = np.asarray(param.value, dtype=np.float64)
    if value.size != 1:
        raise UnsupportedModel(f"{type(model).__name__}.{name} is not a scalar (model set?)")
    return float(value.reshape(-1)[0])


def _array(model: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    param = getattr(model, name)
    if getattr(param, "unit", None) is not None:
        raise UnsupportedModel(f"{type(model).__name__}.{name} has units")
    value = np.asarray(param.value, dtype=np.float64)
    if value.size != int(np.prod(shape)):
        raise UnsupportedModel(f"{type(model).__name__}.{name} has shape {value.shape} (model set?)")
    return value.reshape(shape)


def _compile_leaf(model: Any, inverse: bool) -> CompiledFunction:
    from astropy.modeling import models as m

    if len(model) != 1:
        raise UnsupportedModel(f"model set of {len(model)} {type(model).__name__}")
    if type(model).__name__ == "FITSImagingWCSTransform":
        return compile_model(model.forward, inverse)
    if inverse:
        if isinstance(model, (m.Identity, m.Mapping)):
            return _compile_leaf(model.inverse, False)
        if isinstance(model, m.Polynomial2D) and not model.has_user_inverse:
            raise UnsupportedModel("Polynomial2D without an inverse")
        try:
            inv = model.inverse
        except NotImplementedError as exc:
            raise UnsupportedModel(f"{type(model).__name__} has no analytic inverse") from exc
        return compile_model(inv)
    kind = type(model)
    if kind is m.Shift:
        offset = _scalar(model, "offset")
        return lambda xp, x: (x + offset,)
    if kind in (m.Scale, m.Multiply):
        factor = _scalar(model, "factor")
        return lambda xp, x: (factor * x,)
    if kind is m.Const1D:
        amplitude = _scalar(model, "amplitude")
        return lambda xp, x: (xp.full_like(x, amplitude),)
    if kind is m.Identity:
        return lambda xp, *args: tuple(args)
    if kind is m.Mapping:
        mapping = tuple(model.mapping)
        return lambda xp, *args: tuple(args[i] for i in mapping)
    if kind is m.Rotation2D:
        return _rotation2d(math.radians(_scalar(model, "angle")))
    if kind is m.AffineTransformation2D:
        return _affine(_array(model, "matrix", (2, 2)), _array(model, "translation", (2,)))
    if kind is m.Polynomial2D:
        return _polynomial2d(model)
    if kind is m.Pix2Sky_TAN:
        return _pix2sky_tan
    if kind is m.Sky2Pix_TAN:
        return _sky2pix_tan
    if kind in (m.RotateNative2Celestial, m.RotateCelestial2Native):
        return _sky_rotation(model)
    raise UnsupportedModel(f"model {kind.__name__}")


def _rotation2d(angle_rad: float) -> CompiledFunction:
    c, s = math.cos(angle_rad), math.sin(angle_rad)

    def rotate(xp, x, y):
        return c * x + (-s) * y, s * x + c * y

    return rotate


def _affine(matrix: np.ndarray, translation: np.ndarray) -> CompiledFunction:
    (a, b), (c, d) = matrix.tolist()
    tx, ty = translation.tolist()

    def affine(xp, x, y):
        return a * x + b * y + tx, c * x + d * y + ty

    return affine


def _polynomial2d(model: Any) -> CompiledFunction:
    # astropy maps domain to window first: x' = off + scl * x (identity when they are equal).
    maps = [_domain_map(model, axis) for axis in "xy"]
    degree = int(model.degree)
    # astropy names coefficients c{i}_{j} for x**i * y**j.
    terms = []
    for name in model.param_names:
        i, j = (int(v) for v in name[1:].split("_"))
        value = _scalar(model, name)
        if value != 0.0:
            terms.append((i, j, value))

    def poly(xp, x, y):
        x, y = (v if mp is None else mp[0] + mp[1] * v for v, mp in zip((x, y), maps))
        xpow = [xp.ones_like(x), x]
        ypow = [xp.ones_like(y), y]
        for _ in range(2, degree + 1):
            xpow.append(xpow[-1] * x)
            ypow.append(ypow[-1] * y)
        result = xp.zeros_like(x)
        for i, j, value in terms:
            result = result + value * (xpow[i] * ypow[j])
        return (result,)

    return poly


def _domain_map(model: Any, axis: str) -> tuple[float, float] | None:
    domain = getattr(model, f"{axis}_domain", None)
    if domain is None:
        return None
    window = getattr(model, f"{axis}_window", None)
    (d0, d1), (w0, w1) = (np.asarray(v, np.float64).tolist() for v in (domain, window))
    if (d0, d1) == (w0, w1):
        return None
    return (w0 * d1 - w1 * d0) / (d1 - d0), (w1 - w0) / (d1 - d0)


def _pix2sky_tan(xp, x, y):
    # wcslib tanx2s: phi = atan2(x, -y), theta = atan2(R2D, r), phi = 0 at the pole.
    r = xp.hypot(x, y)
    phi = xp.where(r == 0.0, 0.0, xp.arctan2(x, -y) * _R2D)
    theta = xp.arctan2(_R2D, r) * _R2D
    return phi, theta


def _sky2pix_tan(xp, phi, theta):
    # wcslib tans2x; points on or beyond the native equator (sin(theta) <= 0) are invalid.
    s = xp.sin(theta * _D2R)
    valid = s > 0.0
    r = _R2D * xp.cos(theta * _D2R) / xp.where(valid, s, 1.0)
    x = xp.where(valid, r * xp.sin(phi * _D2R), xp.nan)
    y = xp.where(valid, -r * xp.cos(phi * _D2R), xp.nan)
    return x, y


def _sky_rotation(model: Any) -> CompiledFunction:
    """Euler zxz rotation of astropy's _SkyRotation, matrix built once on the host."""
    from astropy import units as u
    from astropy.coordinates import rotation_matrix
    from astropy.modeling import models as m

    lon = math.radians(_scalar(model, "lon"))
    lat = math.radians(_scalar(model, "lat"))
    lon_pole = math.radians(_scalar(model, "lon_pole"))
    if isinstance(model, m.RotateNative2Celestial):
        angles = (lon_pole - math.pi / 2, -(math.pi / 2 - lat), -(math.pi / 2 + lon))
    else:
        angles = (math.pi / 2 + lon, math.pi / 2 - lat, -(lon_pole - math.pi / 2))
    matrix = np.eye(3)
    for angle, axis in zip(angles, "zxz"):
        matrix = rotation_matrix(angle, axis, unit=u.rad) @ matrix
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = matrix.tolist()

    def rotate(xp, alpha, delta):
        a = alpha * _D2R
        d = delta * _D2R
        cosd = xp.cos(d)
        x = xp.cos(a) * cosd
        y = cosd * xp.sin(a)
        z = xp.sin(d)
        xr = m00 * x + m01 * y + m02 * z
        yr = m10 * x + m11 * y + m12 * z
        zr = m20 * x + m21 * y + m22 * z
        lon_out = xp.arctan2(yr, xr) * _R2D
        lat_out = xp.arctan2(zr, xp.hypot(xr, yr)) * _R2D
        lon_out = xp.where(lon_out < 0, lon_out + 360.0, lon_out)
        return lon_out, lat_out

    return rotate
