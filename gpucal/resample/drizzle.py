"""``gpucal.resample.Drizzle``: a drop-in for ``drizzle.resample.Drizzle`` (drizzle 2.2.0).

Same constructor, ``add_image`` signature and attributes (numpy arrays), plus ``backend=``.
Output arrays are numpy arrays updated in place, as drizzle does; the GPU backend uploads
them for each call and copies the result back. Results equal drizzle 2.2.0 bit for bit for
the square, point and turbo kernels and within 2 float32 ulp for gaussian and lanczos
(spec ``resample.md``; ``docs/algorithms/drizzle.md``).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from gpucal.backend import resolve_backend

from .engine import plan_call, run_cpu

log = logging.getLogger(__name__)

SUPPORTED_DRIZZLE_KERNELS = ["square", "gaussian", "point", "turbo", "lanczos2", "lanczos3"]
CTX_PLANE_BITS = 32
_DEPRECATED_ARG = object()


def _process_fillval(out_img, fillval) -> str:
    if fillval is None:
        fillval = "INDEF"
    elif isinstance(fillval, str):
        fillval = fillval.strip()
        if fillval.upper() in ["", "INDEF"]:
            fillval = "INDEF"
        else:
            float(fillval)
    else:
        fillval = str(fillval)
    if out_img is None and fillval == "INDEF":
        fillval = "NaN"
    return fillval


def _fill_value(fillstr: str) -> np.float32 | None:
    """What drizzle's C layer reads from a fill string: None (no fill) or a float32."""
    if fillstr in ("", "INDEF", "indef"):
        return None
    if fillstr in ("NaN", "nan"):
        return np.float32(np.nan)
    return np.float32(float(fillstr))


def _check_dq(dq, name: str) -> np.ndarray:
    t = np.min_scalar_type(dq)
    if t.kind not in ["i", "u"] or t.itemsize > 4:
        raise TypeError(f"'{name}' must be of an unsigned integer type with itemsize of 4 bytes or less.")
    return np.asarray(dq, dtype=np.uint32)


class Drizzle:
    """Resample and co-add images onto one output grid with the drizzle algorithm.

    Parameters are those of ``drizzle.resample.Drizzle`` (drizzle 2.2.0): ``kernel``
    (square, gaussian, point, turbo, lanczos2, lanczos3), ``fillval``, ``fillval2``,
    ``out_shape``, ``out_img``, ``out_wht``, ``out_ctx``, ``out_img2``, ``out_dq``,
    ``exptime``, ``begin_ctx_id``, ``max_ctx_id``, ``disable_ctx``; plus ``backend``
    (``"gpu"``, ``"cpu"``, ``"auto"`` or None for the process default).
    """

    def __init__(self, kernel="square", fillval=None, fillval2=None, out_shape=None, out_img=None, out_wht=None,
                 out_ctx=None, out_img2=None, out_dq=None, exptime=0.0, begin_ctx_id=0, max_ctx_id=None,
                 disable_ctx=False, backend: str | None = None):
        self._backend = resolve_backend(backend)
        self._ncoadds = 0
        self._out_img2 = None
        self._out_dq = None
        self._disable_ctx = disable_ctx
        if disable_ctx:
            self._ctx_id = None
            self._max_ctx_id = None
        else:
            if begin_ctx_id < 0:
                raise ValueError("Invalid context image ID")
            self._ctx_id = begin_ctx_id
            if max_ctx_id is None:
                max_ctx_id = begin_ctx_id
            elif max_ctx_id < begin_ctx_id:
                raise ValueError("'max_ctx_id' cannot be smaller than 'begin_ctx_id'.")
            self._max_ctx_id = max_ctx_id
        if exptime < 0.0:
            raise ValueError("Exposure time must be non-negative.")
        if exptime > 0.0 and out_img is None and out_ctx is None and out_wht is None:
            raise ValueError("Exposure time must be 0.0 for the first resampling "
                             "(when no output resampled images have been provided).")
        if exptime == 0.0 and ((out_ctx is not None and np.sum(out_ctx) > 0)
                               or (out_wht is not None and np.sum(out_wht) > 0)):
            raise ValueError("Inconsistent exposure time and context and/or weight images: Exposure time "
                             "cannot be 0 when context and/or weight arrays are non-zero.")
        self._texptime = exptime
        if kernel.lower() not in SUPPORTED_DRIZZLE_KERNELS:
            raise ValueError(f"Kernel '{kernel}' is not supported.")
        self._kernel = kernel
        self._fillval = _process_fillval(out_img, fillval)
        self._fillval2 = _process_fillval(out_img2, fillval2)

        shapes = set()
        if out_img is not None:
            out_img = np.asarray(out_img, dtype=np.float32)
            shapes.add(out_img.shape)
        if out_wht is not None:
            out_wht = np.asarray(out_wht, dtype=np.float32)
            shapes.add(out_wht.shape)
        if out_ctx is not None:
            out_ctx = np.asarray(out_ctx, dtype=np.int32)
            if out_ctx.ndim == 2:
                out_ctx = out_ctx[None, :, :]
            elif out_ctx.ndim != 3:
                raise ValueError("'out_ctx' must be either a 2D or 3D array.")
            shapes.add(out_ctx.shape[1:])
        if out_dq is not None:
            out_dq = _check_dq(out_dq, "out_dq")
            shapes.add(out_dq.shape)
            self._out_dq = out_dq
        if out_shape is not None:
            shapes.add(tuple(out_shape))

        if len(shapes) == 1:
            self._out_shape = shapes.pop()
            self._alloc_output_arrays(self._out_shape, max_ctx_id, out_img, out_wht, out_ctx)
        elif len(shapes) > 1:
            raise ValueError("Inconsistent data shapes specified: 'out_shape' and/or out_img, out_img2, out_wht, "
                             "out_ctx, out_dq have different shapes.")
        else:
            self._out_shape = None
            self._out_img = None
            self._out_wht = None
            self._out_ctx = None

        if out_img2 is not None:
            if self._out_shape is not None:
                shapes.add(self._out_shape)
            if isinstance(out_img2, np.ndarray):
                out_img2 = np.asarray(out_img2, dtype=np.float32)
                shapes.add(out_img2.shape)
            else:
                for img in out_img2:
                    if img is not None:
                        shapes.add(np.shape(img))
            if len(shapes) > 1:
                raise ValueError("Inconsistent data shapes specified: 'out_shape' and/or out_img, out_img2, "
                                 "out_wht, out_ctx have different shapes.")
        self._output_shapes = shapes
        self._alloc_output_arrays2_init(out_img2)

    # -- attributes ---------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The resolved backend, ``"gpu"`` or ``"cpu"``."""
        return self._backend

    @property
    def fillval(self):
        """Fill value for output pixels without contributions."""
        return self._fillval

    @property
    def fillval2(self):
        """Fill value for ``out_img2`` pixels without contributions."""
        return self._fillval2

    @property
    def kernel(self):
        """Resampling kernel."""
        return self._kernel

    @property
    def ctx_id(self):
        """Context ID (0-based) of the next image to be resampled."""
        return self._ctx_id

    @property
    def out_img(self):
        """Output resampled image (float32)."""
        return self._out_img

    @property
    def out_wht(self):
        """Output weight image (float32)."""
        return self._out_wht

    @property
    def out_ctx(self):
        """Output context image, int32 ``(nplanes, ny, nx)``."""
        return self._out_ctx

    @property
    def out_img2(self):
        """Output images co-added with squared weights (list of float32 arrays)."""
        return self._out_img2

    @property
    def out_dq(self):
        """Bitwise OR of the DQ of contributing input pixels (uint32)."""
        return self._out_dq

    @property
    def total_exptime(self):
        """Total exposure time of all resampled images."""
        return self._texptime

    # -- allocation ---------------------------------------------------------------------
    def _alloc_output_arrays(self, out_shape, max_ctx_id, out_img, out_wht, out_ctx):
        self._out_wht = np.zeros(out_shape, dtype=np.float32) if out_wht is None else out_wht
        if self._disable_ctx:
            self._out_ctx = None
        else:
            if out_ctx is None:
                self._out_ctx = np.zeros((max_ctx_id // CTX_PLANE_BITS + 1,) + tuple(out_shape), dtype=np.int32)
            else:
                self._out_ctx = out_ctx
            if not (out_wht is None and out_ctx is None):
                if np.any(np.bitwise_xor(self._out_wht > 0.0, np.sum(self._out_ctx, axis=0) > 0)):
                    raise ValueError("Inconsistent values of supplied 'out_wht' and 'out_ctx' arrays. Pixels with "
                                     "non-zero context values must have positive weights and vice-versa.")
        if out_img is None:
            fill = np.nan if self._fillval.upper() in ["INDEF", "NAN"] else float(self._fillval)
            self._out_img = np.full(out_shape, fill, dtype=np.float32)
        else:
            self._out_img = out_img

    def _fill2(self):
        if isinstance(self._fillval2, str) and self._fillval2.strip().upper() == "INDEF":
            return np.nan
        return np.float32(self._fillval2)

    def _alloc_output_arrays2_init(self, out_img2):
        if out_img2 is None:
            return
        if isinstance(out_img2, np.ndarray):
            out_img2 = [out_img2]
        fv = self._fill2()
        self._out_img2 = []
        for i2 in out_img2:
            if i2 is None:
                if self._out_shape is None:
                    if len(self._output_shapes) == 1:
                        shape = next(iter(self._output_shapes))
                    else:
                        self._out_img2.append(None)
                        continue
                else:
                    shape = self._out_shape
                arr = np.full(shape, fill_value=fv, dtype=np.float32)
            else:
                arr = np.asarray(i2, dtype=np.float32)
            self._out_img2.append(arr)

    def _alloc_output_arrays2_add(self, ninputs2):
        fv = self._fill2()
        if self._out_img2 is None:
            if ninputs2 is None or ninputs2 < 1:
                return
            if self._ncoadds > 0:
                raise ValueError("Mismatch between the number of 'out_img2' images and the number of inputs.")
            self._out_img2 = [np.full(self._out_shape, fill_value=fv, dtype=np.float32) for _ in range(ninputs2)]
        else:
            nimg2 = len(self._out_img2)
            for k, img in enumerate(self._out_img2):
                if img is None:
                    self._out_img2[k] = np.full(self._out_shape, fill_value=fv, dtype=np.float32)
            if (ninputs2 is not None and ninputs2 != nimg2) or (ninputs2 is None and nimg2 > 0):
                raise ValueError("Mismatch between the number of 'out_img2' images previously set and the number "
                                 "of inputs.")

    def _increment_ctx_id(self):
        if self._disable_ctx:
            return None, 0
        plane_no = self._ctx_id // CTX_PLANE_BITS
        if plane_no >= self._out_ctx.shape[0]:
            plane = np.zeros((1,) + tuple(self._out_shape), np.int32)
            self._out_ctx = np.append(self._out_ctx, plane, axis=0)
        info = (plane_no, self._ctx_id % CTX_PLANE_BITS)
        self._ctx_id += 1
        return info

    # -- drizzling ----------------------------------------------------------------------
    def add_image(self, data, exptime, pixmap, data2=None, dq=None, scale=_DEPRECATED_ARG, iscale=1.0,
                  pixel_scale_ratio=1.0, weight_map=None, wht_scale=1.0, pixfrac=1.0, in_units="cps", xmin=None,
                  xmax=None, ymin=None, ymax=None, *, also=None):
        """Resample ``data`` with ``pixmap`` and co-add it into the outputs (drizzle 2.2.0 semantics).

        ``also`` (gpucal extension): ``[(data_k, out_img_k, out_wht_k), ...]``, more images of
        ``data``'s shape co-added with exactly this call's weights into their own float32
        ``out_img_k``/``out_wht_k`` (updated in place; no context, fill or exposure time), the same
        bits as separate ``add_image`` calls, with the kernel weights computed once (jwst drizzles
        each variance array that way).

        ``pixmap`` is ``(ny, nx, 2)``: output x and y of each input pixel centre (NaN:
        unmapped). Returns ``(nmiss, nskip)`` as drizzle does; gpucal reports 0 for both
        (drizzle's own counters can be negative and are not part of the parity).
        """
        if scale is not _DEPRECATED_ARG:
            warnings.warn("Argument 'scale' has been deprecated since version 3.0 and it will be removed in a "
                          "future release. Use 'iscale' and 'pixel_scale_ratio' instead and set "
                          "iscale=pixel_scale_ratio**2 to achieve the same effect as with 'scale'.",
                          DeprecationWarning, stacklevel=2)
            iscale = scale * scale
            pixel_scale_ratio = scale

        if self._out_shape is None:
            nshapes = len(self._output_shapes)
            if nshapes == 0:
                pmap_xmin = int(np.floor(np.nanmin(pixmap[:, :, 0])))
                pmap_xmax = int(np.ceil(np.nanmax(pixmap[:, :, 0])))
                pmap_ymin = int(np.floor(np.nanmin(pixmap[:, :, 1])))
                pmap_ymax = int(np.ceil(np.nanmax(pixmap[:, :, 1])))
                pixmap = np.array(pixmap, dtype=np.float64)
                pixmap[:, :, 0] -= pmap_xmin
                pixmap[:, :, 1] -= pmap_ymin
                # drizzle 2.2.0 builds (nx, ny) here; kept for drop-in equality
                self._out_shape = (pmap_xmax - pmap_xmin + 1, pmap_ymax - pmap_ymin + 1)
            elif nshapes == 1:
                self._out_shape = next(iter(self._output_shapes))
            else:
                raise ValueError("Inconsistent data shapes: 'out_shape' and/or out_img, out_img2, out_wht, out_ctx "
                                 "have different shapes.")
            self._alloc_output_arrays(self._out_shape, self._max_ctx_id, None, None, None)

        if data2 is None:
            ninputs2 = None
        elif isinstance(data2, np.ndarray):
            ninputs2 = 1
            if data2.shape != data.shape:
                raise ValueError("'data2' shape is not consistent with 'data' shape.")
            data2 = [data2]
        else:
            shapes2 = set()
            ninputs2 = len(data2)
            data2 = list(data2)
            for k, d in enumerate(data2):
                if d is None or d.size == 0:
                    data2[k] = None
                else:
                    shapes2.add(d.shape)
            if (len(shapes2) == 1 and shapes2.pop() != data.shape) or len(shapes2) > 1:
                raise ValueError("'data2' shape(s) is not consistent with 'data' shape.")
        self._alloc_output_arrays2_add(ninputs2)
        plane_no, id_in_plane = self._increment_ctx_id()

        if exptime <= 0.0:
            raise ValueError("'exptime' *must* be a strictly positive number.")
        expscale = 1.0 if in_units == "cps" else exptime
        if in_units not in ("cps", "counts"):
            raise ValueError(f"Invalid input units '{in_units}': use 'cps' or 'counts'.")
        self._texptime += exptime
        data = np.ascontiguousarray(data, dtype=np.float32)
        pixmap = np.ascontiguousarray(pixmap, dtype=np.float64)
        in_ymax, in_xmax = data.shape
        if pixmap.ndim != 3 or pixmap.shape[:2] != data.shape or pixmap.shape[2] != 2:
            raise ValueError("'pixmap' shape is not consistent with 'data' shape.")
        xmin = 0 if xmin is None or xmin < 0 else int(xmin)
        ymin = 0 if ymin is None or ymin < 0 else int(ymin)
        xmax = in_xmax - 1 if xmax is None or xmax > in_xmax - 1 or xmax == 0 else int(xmax)
        ymax = in_ymax - 1 if ymax is None or ymax > in_ymax - 1 or ymax == 0 else int(ymax)
        if weight_map is not None:
            weight_map = np.ascontiguousarray(weight_map, dtype=np.float32)
            if weight_map.shape != data.shape:
                raise ValueError("'weight_map' shape is not consistent with 'data' shape.")
        else:
            weight_map = np.ones_like(data)
        ctx_plane = None if self._disable_ctx else self._out_ctx[plane_no]
        if dq is not None:
            dq = np.ascontiguousarray(_check_dq(dq, "dq"))
            if dq.shape != data.shape:
                raise ValueError("'dq' shape is not consistent with 'data' shape.")
            if self._out_dq is None:
                self._out_dq = np.zeros(self._out_shape, dtype=np.uint32)

        iscale = np.float32(iscale)
        if not (np.isfinite(iscale) and iscale > 0.0):
            raise ValueError("Argument 'iscale' must be positive and finite.")
        psr = np.nan
        if pixel_scale_ratio is not None:
            psr = np.float32(pixel_scale_ratio)
            if not (np.isfinite(psr) and psr > 0.0):
                raise ValueError("Argument 'pscale_ratio' must be positive and finite.")
        if in_units != "cps":
            iscale = iscale / np.float32(expscale)
        if not np.float32(expscale) > 0.0:
            raise ValueError("exposure time must be > 0")
        if not np.float32(wht_scale) > 0.0:
            raise ValueError("weight scale must be > 0")

        planes2 = []
        out2 = []
        if data2 is not None and any(d is not None for d in data2):
            planes2 = [None if d is None else np.ascontiguousarray(d, dtype=np.float32) for d in data2]
            out2 = self._out_img2
        bit = int(np.array(1 << id_in_plane, dtype=np.uint32).view(np.int32))
        call = plan_call(self._kernel.lower(), pixmap, self._out_img.shape, (xmin, xmax, ymin, ymax), float(pixfrac),
                         float(psr), iscale, wht_scale, bit)
        use_var = bool(planes2) or dq is not None
        shared = [(_also_data(d, data.shape), _also_out(img, self._out_img.shape), _also_out(wht, self._out_img.shape))
                  for d, img, wht in (also or ())]
        if call is not None:
            args = (call, data, weight_map, pixmap, planes2, dq if use_var else None, self._out_img, self._out_wht,
                    out2, ctx_plane, self._out_dq if dq is not None else None)
            if self._backend == "gpu":
                from gpucal.gpu.drizzle import run_gpu

                run_gpu(*args)
                for d, img, wht in shared:
                    run_gpu(call, d, weight_map, pixmap, [], None, img, wht, [], None, None)
            else:
                run_cpu(*args, shared=shared)
        self._put_fill(bool(planes2))
        self._ncoadds += 1
        return 0, 0

    def _put_fill(self, with_planes2: bool) -> None:
        fill = _fill_value(self._fillval)
        if fill is None:
            return
        empty = self._out_wht == 0.0
        self._out_img[empty] = fill
        fill2 = _fill_value(self._fillval2) if isinstance(self._fillval2, str) else None
        if with_planes2 and fill2 is not None:
            for plane in self._out_img2:
                plane[empty] = fill2


def _also_data(data, shape: tuple[int, int]) -> np.ndarray:
    """One ``also`` image as C-contiguous float32 of the input's shape."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.shape != shape:
        raise ValueError("'also' data shape is not consistent with 'data' shape.")
    return data


def _also_out(arr, shape: tuple[int, int]) -> np.ndarray:
    """One ``also`` output: updated in place, so it must already be C-contiguous float32."""
    if not (isinstance(arr, np.ndarray) and arr.dtype == np.float32 and arr.flags.c_contiguous
            and arr.shape == shape):
        raise ValueError(f"'also' outputs must be C-contiguous float32 arrays of shape {shape}.")
    return arr
