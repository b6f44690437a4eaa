"""detector1: raw ramps to count rates, as jwst's ``calwebb_detector1`` (spec detector1_steps.md).

Streaming: every group-level step is independent per integration, so the exposure is read
and calibrated one block of integrations at a time (the block size comes from
``max_memory``); each step further works in row blocks of its own (with the halo IPC and
saturation growth need). When one integration does not fit, it is streamed in row blocks
(with those halos, references cut to the rows) up to refpix, refpix corrects it in place in
the calibrated buffer, and the later steps stream row blocks again (``_Chain``). Blocks are
written into the calibrated ramp, kept in memory when
it fits half the budget and otherwise in a temporary memory-mapped file; jump detection and
ramp fitting then stream over it themselves. Results do not depend on the block size:
refpix's one exposure-order dependence (jwst's float32 first plane) is passed on with
``exposure_start``, pixel DQ is OR-ed across blocks, and MIRI refpix (whose "stop after a
missing reference value" state runs across integrations) runs once, in place, on the
assembled ramp. See docs/algorithms/detector1_pipeline.md.

Outputs are written only after every step succeeded, each one atomically; if a later write
fails, the files this run already wrote are removed.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_host
from ..errors import GpucalError, InputError
from ..memory_peak import PeakMemory
from ..products import RampFitResult, RateProduct
from ..ramp import Ramp
from ..steps._derive import like
from .memory_plan import BLOCK_BYTES_PER_SAMPLE, BLOCK_COPIES, plan_memory
from .steps import STATUS_KEYWORDS, STEP_REFTYPES, is_miri, needed_reftypes, plan_steps, step_function, step_order

log = logging.getLogger(__name__)


class NothingFittedError(GpucalError):
    """Ramp fitting had nothing to fit (every pixel saturated in its first group); no product."""

_READERS = {"mask": "read_mask", "saturation": "read_saturation", "superbias": "read_superbias",
            "linearity": "read_linearity", "dark": "read_dark", "gain": "read_gain", "readnoise": "read_readnoise"}


# ------------------------------------------------------------------ inputs
def _open(input: Ramp | str | os.PathLike[str]) -> tuple[Ramp, Path | None]:
    if isinstance(input, Ramp):
        return input, None
    if not isinstance(input, (str, os.PathLike)):
        raise InputError(f"input must be an _uncal.fits path or a gpucal.Ramp, got {type(input).__name__}")
    path = Path(input)
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    return Ramp.from_fits(path), path


def _check_keywords(ramp: Ramp, skips: Mapping[str, bool]) -> None:
    """Fail before any work when the enabled steps lack exposure keywords they need."""
    need = ["INSTRUME", "DETECTOR"]
    if not skips.get("refpix", True) or not skips.get("ipc", True):
        need += ["SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2"]
    if not skips.get("refpix", True) and not is_miri(ramp):
        need += ["FASTAXIS", "SLOWAXIS"]
    missing = [k for k in need if ramp.meta.get(k) in (None, "")]
    if missing:
        raise InputError(f"the exposure lacks keyword(s) {', '.join(missing)} needed by the enabled steps")


def _load_refs(ramp: Ramp, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """Read (and cut to the exposure) every resolved reference given as a path; objects pass through."""
    from .. import refs as refmod

    out: dict[str, Any] = {}
    for reftype, value in resolved.items():
        if isinstance(value, (str, os.PathLike)) and reftype in _READERS:
            out[reftype] = getattr(refmod, _READERS[reftype])(value, ramp)
        elif isinstance(value, (str, os.PathLike)) and reftype == "ipc":
            from ..refs.ipc import read_ipc

            out[reftype] = read_ipc(value)
        else:
            out[reftype] = value
    return out


def _gain_factor(ramp: Ramp, gain_ref: Any) -> float | None:
    """GAINFACT of the exposure, else of the GAIN reference file's primary header, else None."""
    if ramp.meta.get("GAINFACT") is not None:
        return float(ramp.meta["GAINFACT"])
    if isinstance(gain_ref, (str, os.PathLike)):
        from astropy.io import fits

        value = fits.getheader(gain_ref).get("GAINFACT")
        return None if value is None else float(value)
    return None


# ------------------------------------------------------------------ plan
def integrations_per_block(ramp: Ramp, budget: int) -> int:
    """Integrations per block so that :data:`BLOCK_COPIES` copies fit half of ``budget``; 0 when one does not."""
    per_int = ramp.ngroups * ramp.ny * ramp.nx * BLOCK_BYTES_PER_SAMPLE
    return int(min((budget // 2) // (BLOCK_COPIES * per_int), ramp.nints))


def rows_per_block(ramp: Ramp, budget: int, halo: int) -> int:
    """Interior rows of one integration's row block (plus ``halo`` rows each side) within half of ``budget``."""
    per_row = BLOCK_COPIES * ramp.ngroups * ramp.nx * BLOCK_BYTES_PER_SAMPLE
    rows = (budget // 2) // per_row - 2 * halo
    if rows < 1:
        raise InputError(f"memory budget of {budget / 2**20:.1f} MiB cannot hold {2 * halo + 1} rows of one "
                         f"integration ({(2 * halo + 1) * per_row / 2**20:.1f} MiB); raise max_memory")
    return min(rows, ramp.ny)


def _read_block(ramp: Ramp, i0: int, i1: int, rows: slice = slice(None)) -> Ramp:
    """Integrations ``[i0, i1)``, rows ``rows``, as a Ramp of fresh arrays; a row block is labelled
    as the subarray it is (SUBSTRT2/SUBSIZE2), so steps that locate reference pixels see the truth."""
    r0, r1, _ = rows.indices(ramp.ny)
    window: dict[str, int] = {}
    if rows != slice(None):
        from ..refs.subarray import subarray_window

        xstart, ystart, xsize, _ = subarray_window(ramp.meta) or (1, 1, ramp.nx, ramp.ny)
        window = dict(SUBSTRT1=xstart, SUBSIZE1=xsize, SUBSTRT2=ystart + r0, SUBSIZE2=r1 - r0)
    return like(ramp, *ramp.block(r0, r1, ints=(i0, i1)), **window)


def to_device(block: Ramp) -> Ramp:
    """``block`` with its arrays uploaded to the GPU: the one upload of a block in the device chain."""
    import cupy

    return like(block, cupy.asarray(block.data), cupy.asarray(block.groupdq), cupy.asarray(block.pixeldq),
                None if block.zeroframe is None else cupy.asarray(block.zeroframe))


def _ref_rows(refs: Mapping[str, Any], params: Mapping[str, dict], rows: slice) -> tuple[dict, dict]:
    """References and step parameters cut to detector rows ``rows`` (IPC keeps absolute indexing)."""
    import dataclasses

    from ..refs.calib import CalibReference

    def cut(a):
        return None if a is None else a[..., rows, :]

    out = {}
    for key, ref in refs.items():
        if isinstance(ref, CalibReference):
            ref = dataclasses.replace(ref, data=cut(ref.data), dq=cut(ref.dq),
                                      average_dark_current=None if ref.average_dark_current is None
                                      else ref.average_dark_current[rows],
                                      inv_coeffs=cut(ref.inv_coeffs))
        out[key] = ref
    cut_params = {k: dict(v) for k, v in params.items()}
    if cut_params.get("dq_init", {}).get("user_dq") is not None:
        cut_params["dq_init"]["user_dq"] = np.asarray(cut_params["dq_init"]["user_dq"])[rows]
    return out, cut_params


class _Calibrated:
    """The calibrated ramp being assembled: in memory, or memory-mapped in ``workdir``."""

    def __init__(self, ramp: Ramp, in_memory: bool, workdir: str):
        shape = ramp.shape
        nbytes = int(np.prod(shape, dtype=np.int64)) * 5
        if in_memory:
            self.data, self.groupdq = np.empty(shape, np.float32), np.empty(shape, np.uint8)
        else:
            log.info("calibrated ramp (%.1f MiB) kept in a memory-mapped file in %s", nbytes / 2**20, workdir)
            self.data = np.memmap(Path(workdir) / "data.f32", np.float32, "w+", shape=shape)
            self.groupdq = np.memmap(Path(workdir) / "groupdq.u8", np.uint8, "w+", shape=shape)
        self.pixeldq = np.zeros((ramp.ny, ramp.nx), np.uint32)
        self.zeroframe = None if ramp.zeroframe is None else np.empty((ramp.nints, ramp.ny, ramp.nx), np.float32)
        self.template = ramp
        self.meta: dict[str, Any] = dict(ramp.meta)

    def put(self, i0: int, block: Ramp) -> None:
        """Store a calibrated block (host or device: a device block is downloaded here, once)."""
        i1 = i0 + block.nints
        self.data[i0:i1] = to_host(block.data)
        self.groupdq[i0:i1] = to_host(block.groupdq)
        self.pixeldq |= to_host(block.pixeldq).astype(np.uint32, copy=False)
        if self.zeroframe is not None:
            self.zeroframe[i0:i1] = to_host(block.zeroframe)
        self.meta.update(block.meta)

    def ramp(self) -> Ramp:
        return like(self.template, self.data, self.groupdq, self.pixeldq, self.zeroframe, **self.meta)


# ------------------------------------------------------------------ run
class _Timer:
    """Per-step wall time summed over blocks, and each step's status (COMPLETE / SKIPPED)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.status: dict[str, str] = {}

    def run(self, name: str, func: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = func()
        dt = time.perf_counter() - start
        self.seconds[name] = self.seconds.get(name, 0.0) + dt
        log.debug("detector1: %s %.3f s", name, dt)
        return out


def _self_skipped(name: str, ramp: Ramp) -> bool:
    """Steps that decide at run time to do nothing (jwst marks them SKIPPED)."""
    if name == "group_scale":
        div = ramp.meta.get("FRMDIVSR")
        return div is None or int(div) == ramp.nframes
    if name in ("firstframe", "lastframe"):
        if not str(ramp.meta.get("DETECTOR", "")).strip().upper().startswith("MIR"):
            return True
        return ramp.ngroups <= (3 if name == "firstframe" else 2)
    return False


def _group_step(name: str, r: Ramp, refs: Mapping[str, Any], params: dict, backend: str | None,
                step_memory: int | None, exposure_start: bool, state: dict) -> Ramp:
    func = step_function(name)
    kw: dict[str, Any] = dict(params, backend=backend, max_memory=step_memory)
    if name == "refpix":
        return func(r, exposure_start=exposure_start, **kw)
    if name in ("group_scale", "firstframe", "lastframe"):
        return func(r, **kw)
    if name == "dq_init":
        return func(r, refs["mask"], **kw)
    if name == "saturation":
        return func(r, refs["saturation"], superbias_ref=refs.get("superbias_for_saturation"), **kw)
    if name == "dark_current":
        res = func(r, refs["dark"], **kw)
        state["average_dark_current"] = res.average_dark_current
        state["dark_skipped"] = res.skipped
        return res.ramp
    reftype = {"ipc": "ipc", "superbias": "superbias", "linearity": "linearity"}[name]
    return func(r, refs[reftype], **kw)


def _status(name: str, r: Ramp, state: dict) -> str:
    if name == "dark_current" and state.get("dark_skipped"):
        return "SKIPPED"
    if _self_skipped(name, r):
        return "SKIPPED"
    return str(r.meta.get(STATUS_KEYWORDS[name], "COMPLETE"))


def _halo(names: list[str], refs: Mapping[str, Any], params: Mapping[str, dict]) -> int:
    """Rows a row block needs on each side: saturation's growth (2n, backward pass) plus IPC's kernel."""
    halo = 0
    if "saturation" in names:
        halo += 2 * int(params["saturation"].get("n_pix_grow_sat", 1))
    if "ipc" in names:
        kernel = refs["ipc"]
        halo += int(np.shape(getattr(kernel, "data", kernel))[0]) // 2
    return halo


class _Chain:
    """Runs a list of group-level steps on a block, timing each and recording its status."""

    def __init__(self, refs, params, backend, step_memory, refpix_memory, timer: _Timer, state: dict):
        self.refs, self.params, self.backend = refs, params, backend
        self.step_memory, self.timer, self.state = step_memory, timer, state
        self.refpix_memory = refpix_memory

    def run(self, r: Ramp, names: list[str], exposure_start: bool, refs=None, params=None) -> Ramp:
        """The steps ``names`` on block ``r``; on the GPU the block is uploaded once and every step
        works on the device (the caller downloads the result once)."""
        refs, params = refs or self.refs, params or self.params
        if self.backend == "gpu" and names:
            r = to_device(r)
        for name in names:
            r = self.timer.run(name, lambda name=name, r=r: _group_step(
                name, r, refs, params[name], self.backend, self.step_memory, exposure_start, self.state))
            self.timer.status[name] = _status(name, r, self.state)
        return r

    def integration_by_rows(self, ramp: Ramp, i: int, cal: _Calibrated, names: list[str], nrows: int, halo: int,
                            avg: np.ndarray) -> None:
        """Integration ``i`` in row blocks: the steps before refpix (with halos), refpix in place on the
        calibrated buffer (it reads a few planes at a time), then the steps after it."""
        ny = ramp.ny
        split = names.index("refpix") if "refpix" in names else len(names)
        before, after = names[:split], names[split + 1:]
        pdq = np.empty((ny, ramp.nx), np.uint32)

        def blocks(step_rows: int, step_halo: int):
            for r0 in range(0, ny, step_rows):
                r1 = min(ny, r0 + step_rows)
                h0, h1 = max(0, r0 - step_halo), min(ny, r1 + step_halo)
                yield slice(r0, r1), slice(h0, h1), slice(r0 - h0, r1 - h0)

        def store(r: Ramp, rows: slice, keep: slice, ran: list[str]) -> None:
            cal.data[i, :, rows] = to_host(r.data)[0, :, keep]
            cal.groupdq[i, :, rows] = to_host(r.groupdq)[0, :, keep]
            pdq[rows] = to_host(r.pixeldq)[keep]
            if cal.zeroframe is not None:
                cal.zeroframe[i, rows] = to_host(r.zeroframe)[0, keep]
            if "dark_current" in ran:
                avg[rows] = self.state["average_dark_current"][keep]

        for rows, halo_rows, keep in blocks(nrows, halo):
            refs, params = _ref_rows(self.refs, self.params, halo_rows)
            store(self.run(_read_block(ramp, i, i + 1, halo_rows), before, i == 0, refs, params), rows, keep, before)
        if split == len(names):
            cal.pixeldq |= pdq
            return
        view = cal.data[i:i + 1]
        zf = None if cal.zeroframe is None else cal.zeroframe[i:i + 1]
        one = like(ramp, view, cal.groupdq[i:i + 1], pdq, zf)
        done = self.timer.run("refpix", lambda: step_function("refpix")(
            one, backend=self.backend, exposure_start=i == 0, out=view, max_memory=self.refpix_memory,
            **self.params["refpix"]))
        self.timer.status["refpix"] = _status("refpix", done, self.state)
        if zf is not None and done.zeroframe is not zf:
            zf[...] = done.zeroframe
        source = like(ramp, cal.data, cal.groupdq, pdq.copy(), cal.zeroframe)
        for rows, _, keep in blocks(nrows, 0):
            refs, params = _ref_rows(self.refs, self.params, rows)
            store(self.run(_read_block(source, i, i + 1, rows), after, i == 0, refs, params), rows, keep, after)
        cal.pixeldq |= pdq


def detector1(
    input: Ramp | str | os.PathLike[str],
    *,
    refs: Mapping[str, Any] | None = None,
    backend: str | None = "auto",
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    save_calibrated_ramp: bool = False,
    output_dir: str | os.PathLike[str] | None = None,
    max_memory: int | str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RateProduct:
    """Calibrate a raw exposure to count rates, as jwst 3.0.0's ``calwebb_detector1``.

    Parameters
    ----------
    input : path or Ramp
        An ``_uncal.fits`` (or ``_ramp.fits``) file, read lazily, or a :class:`gpucal.Ramp`.
    refs : dict, optional
        Reference overrides ``{"mask": path, "dark": path, ...}`` (lower-case REFTYPEs: mask,
        saturation, superbias, linearity, dark, ipc, gain, readnoise); a value may also be a
        reference already read (``gpucal.refs.read_*``). Others come from the exposure's
        ``R_<TYPE>`` keywords (files next to it), a local CRDS cache, or the built-in
        synthetic set (see :func:`gpucal.refs.resolve.resolve_references`).
    backend : {"gpu", "cpu", "auto"}, optional
    steps : dict, optional
        Per-step options with jwst's parameter names, e.g.
        ``{"refpix": {"skip": True}, "jump": {"rejection_threshold": 5}}``. Defaults skip ipc,
        clean_flicker_noise (and for MIRI firstframe, refpix; lastframe for MIRI TSO).
    save_calibrated_ramp : bool
        Also write ``<name>_ramp.fits`` (the ramp after jump / clean_flicker_noise).
    output_dir : path, optional
        Where ``<name>_rate.fits`` and ``<name>_rateints.fits`` go; None writes nothing.
    max_memory : int or str, optional
        Bound on the host memory the run adds (anonymous memory: heap and arrays; bytes or
        e.g. ``"2GB"``; default 2 GiB, or the minimum below when larger). Part of it is a floor
        (rate/rateints products, 20 bytes a pixel each plane; the reference arrays; 48 bytes a
        pixel of 2-D arrays); the rest plans the integration or row blocks, refpix's planes,
        jump's and ramp_fit's row blocks, and whether the calibrated ramp and jump's flag
        arrays are in memory or in scratch files (page cache, not counted). A budget below the
        floor plus one refpix plane and one row block of each step raises InputError naming
        the minimum. See docs/algorithms/detector1_pipeline.md, "Memory".
    progress : callable, optional
        ``progress(done_integrations, nints)`` after each integration block.

    Returns
    -------
    RateProduct
        The gain-scaled rate image; its meta records each step's status (``S_DQINIT`` ...).
        The per-integration product goes to ``_rateints.fits``; :func:`detector1_result`
        returns both in memory.

    Raises
    ------
    InputError
        Bad input, references (wrong type, shape, all NaN), overrides or missing keywords;
        no file is written.
    NothingFittedError
        Nothing could be fitted (every pixel saturated in its first group).
    """
    return detector1_result(input, refs=refs, backend=backend, steps=steps,
                            save_calibrated_ramp=save_calibrated_ramp, output_dir=output_dir,
                            max_memory=max_memory, progress=progress).rate


def detector1_result(
    input: Ramp | str | os.PathLike[str],
    *,
    refs: Mapping[str, Any] | None = None,
    backend: str | None = "auto",
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    save_calibrated_ramp: bool = False,
    output_dir: str | os.PathLike[str] | None = None,
    max_memory: int | str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RampFitResult:
    """As :func:`detector1`, returning the whole :class:`RampFitResult` (rate and rateints).

    The last log line gives the run's time and its peak host memory (:mod:`gpucal.memory_peak`).
    """
    start = time.perf_counter()
    with PeakMemory() as peak:
        result = _run(input, refs, backend, steps, save_calibrated_ramp, output_dir, max_memory, progress)
    log.info("detector1: done in %.2f s, %s", time.perf_counter() - start, peak.summary())
    return result


def _run(input, refs, backend, steps, save_calibrated_ramp, output_dir, max_memory, progress) -> RampFitResult:
    from ..backend import resolve_backend
    from ..refs.resolve import resolve_references

    backend = resolve_backend(backend)
    ramp, path = _open(input)
    skips, params = plan_steps(ramp, steps)
    _check_keywords(ramp, skips)
    miri = is_miri(ramp)
    resolved = resolve_references(ramp, needed_reftypes(ramp, skips), refs, input_path=path)
    if not skips["saturation"] and not miri:
        # saturation's group-2 check uses the bias when one exists (jwst: 0 otherwise)
        try:
            resolved["superbias_for_saturation"] = resolved.get("superbias") or resolve_references(
                ramp, ["superbias"], refs, input_path=path)["superbias"]
        except InputError:
            log.info("saturation: no SUPERBIAS reference, bias taken as 0")
    order = [n for n in step_order(ramp) if n not in ("jump", "clean_flicker_noise", "ramp_fit", "gain_scale")]
    late_refpix = miri and not skips["refpix"]
    # refuse a budget below the floor before any reference is read (sizes from their headers)
    plan_memory(ramp, {k: v for k, v in resolved.items() if k != "superbias_for_saturation" and v is not None},
                max_memory, halo=0, refpix=not skips["refpix"])
    loaded = _load_refs(ramp, {k: v for k, v in resolved.items() if k != "superbias_for_saturation"})
    if "superbias_for_saturation" in resolved:
        sb = resolved["superbias_for_saturation"]
        loaded["superbias_for_saturation"] = (loaded["superbias"] if "superbias" in loaded
                                              else _load_refs(ramp, {"superbias": sb})["superbias"])
    for name in step_order(ramp):  # a CRDS "N/A" reference skips its step
        if not skips[name] and any(resolved.get(t, "") is None for t in STEP_REFTYPES.get(name, ())):
            log.info("detector1: %s skipped, its reference is N/A", name)
            skips[name] = True

    block_steps = [n for n in order if not skips[n] and not (late_refpix and n == "refpix")]
    halo = _halo(block_steps, loaded, params)
    plan = plan_memory(ramp, loaded, max_memory, halo=halo, refpix=not skips["refpix"])
    log.info("detector1: host memory %s", plan.describe())
    work = plan.work
    # The steps share the working share. On the GPU without a budget each step sizes its
    # blocks from free device memory instead.
    host_budgets = backend != "gpu" or max_memory is not None
    step_memory = max(work // 8, 1 << 20) if host_budgets else None
    tail_memory = work // 2 if host_budgets else None
    timer = _Timer()
    timer.status.update({n: "SKIPPED" for n in step_order(ramp) if skips[n]})
    log.info("detector1: %s on %s, steps %s", ramp, backend, " -> ".join(n for n in step_order(ramp) if not skips[n]))

    with tempfile.TemporaryDirectory(prefix="gpucal_d1_", dir=output_dir if output_dir and
                                     Path(output_dir).is_dir() else None) as workdir:
        cal = _Calibrated(ramp, plan.buffers_in_memory(ramp), workdir)
        block_budget = work
        if backend == "gpu":
            from ..backend import free_device_memory

            # the whole block and the steps' block-sized temporaries live on the device at once
            block_budget = min(work, free_device_memory() // 3)
        per_block = integrations_per_block(ramp, block_budget)
        state: dict[str, Any] = {"scratch_dir": workdir}
        chain = _Chain(loaded, params, backend, step_memory, work // 2, timer, state)
        if per_block == 0:
            rows = rows_per_block(ramp, block_budget, halo)
            log.info("one integration exceeds half the working memory of %.1f MiB: streaming row blocks of %d "
                     "rows (halo %d)", block_budget / 2**20, rows, halo)
            avg = np.zeros((ramp.ny, ramp.nx), np.float32)
            for i in range(ramp.nints):
                chain.integration_by_rows(ramp, i, cal, block_steps, rows, halo, avg)
                if progress is not None:
                    progress(i + 1, ramp.nints)
            if "average_dark_current" in state:
                state["average_dark_current"] = avg
        for i0 in range(0, ramp.nints, per_block or ramp.nints):
            if per_block == 0:
                break
            i1 = min(ramp.nints, i0 + per_block)
            cal.put(i0, chain.run(_read_block(ramp, i0, i1), block_steps, i0 == 0))
            if progress is not None:
                progress(i1, ramp.nints)
        calibrated = cal.ramp()
        if late_refpix:  # in place on the assembled ramp
            calibrated = timer.run("refpix", lambda: step_function("refpix")(
                calibrated, backend=backend, out=calibrated.data, max_memory=work // 2, **params["refpix"]))
            timer.status["refpix"] = _status("refpix", calibrated, state)
        result = _tail(calibrated, skips, params, loaded, resolved, state, backend, tail_memory, timer)
        meta = {STATUS_KEYWORDS[n]: timer.status[n] for n in timer.status if n in STATUS_KEYWORDS}
        for product in (result.rate, result.rateints):
            if product is not None:
                product.meta.update(meta)
        for name, sec in timer.seconds.items():
            log.info("detector1: %-20s %8.3f s", name, sec)
        if output_dir is not None:
            _write(result, state["calibrated_ramp"] if save_calibrated_ramp else None, ramp, path, Path(output_dir))
    return result


def _tail(ramp: Ramp, skips, params, loaded, resolved, state, backend, memory, timer: _Timer) -> RampFitResult:
    gain, readnoise = loaded.get("gain"), loaded.get("readnoise")
    if not skips["jump"]:
        ramp = timer.run("jump", lambda: step_function("jump")(ramp, gain, readnoise, backend=backend,
                                                               max_memory=memory, scratch_dir=state["scratch_dir"],
                                                               **params["jump"]))
        timer.status["jump"] = "COMPLETE"
    if not skips["clean_flicker_noise"]:
        import inspect

        cfn = step_function("clean_flicker_noise")
        extra = {"max_memory": memory} if "max_memory" in inspect.signature(cfn).parameters else {}
        ramp = timer.run("clean_flicker_noise", lambda: cfn(ramp, backend=backend, **extra,
                                                             **params["clean_flicker_noise"]))
        timer.status["clean_flicker_noise"] = "COMPLETE"
    state["calibrated_ramp"] = ramp
    if skips["ramp_fit"]:
        raise InputError("ramp_fit cannot be skipped: detector1 returns the rate product")
    result = timer.run("ramp_fit", lambda: step_function("ramp_fit")(
        ramp, gain, readnoise, backend=backend, max_memory=memory,
        average_dark_current=state.get("average_dark_current"), **params["ramp_fit"]))
    timer.status["ramp_fit"] = "COMPLETE"
    if result.rate is None:
        raise NothingFittedError("nothing could be fitted (every pixel saturated in its first group, or fewer than two "
                          "usable groups); no product written")
    if not skips["gain_scale"]:
        factor = _gain_factor(ramp, resolved.get("gain"))
        gs = step_function("gain_scale")
        result.rate = timer.run("gain_scale", lambda: gs(result.rate, factor, backend=backend, in_place=True))
        if result.rateints is not None:
            result.rateints = gs(result.rateints, factor, backend=backend, in_place=True)
        timer.status["gain_scale"] = "SKIPPED" if factor is None else "COMPLETE"
    return result


def _write(result: RampFitResult, calibrated: Ramp | None, ramp: Ramp, path: Path | None, out_dir: Path) -> None:
    """Write the products (each atomically); remove this run's files if one of them fails."""
    from ..io import output_prefix

    name = path if path is not None else Path(str(ramp.meta.get("FILENAME") or "gpucal_uncal.fits"))
    prefix = output_prefix(name, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        if calibrated is not None:
            written.append(calibrated.to_fits(f"{prefix}_ramp.fits", overwrite=True))
        written.append(result.rate.to_fits(f"{prefix}_rate.fits"))
        if result.rateints is not None:
            written.append(result.rateints.to_fits(f"{prefix}_rateints.fits"))
    except BaseException:
        for p in written:
            Path(p).unlink(missing_ok=True)
        raise
    for p in written:
        log.info("wrote %s", p)
