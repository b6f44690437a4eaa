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

Outputs are checked before any work (never onto an input or a read-only file, an existing
one only with ``overwrite``, a writable directory: :mod:`gpucal.io.output_safety`) and
written only after every step succeeded, each one atomically; if a later write fails, the
files this run already wrote are removed. Products record every step's ``S_*`` status and
the reference files used (``R_*``, absolute paths); steps the input records as COMPLETE are
skipped (:func:`~gpucal.pipeline.steps.skip_completed`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_host
from ..chunking import DEFAULT_CPU_MEMORY, parse_memory
from ..errors import GpucalError, InputError
from ..io.debris import Scratch, scratch_space
from ..products import RampFitResult, RateProduct
from ..progress import StagedProgress
from ..ramp import Ramp
from ..steps._derive import like
from .steps import (
    STATUS_KEYWORDS,
    STEP_REFTYPES,
    is_miri,
    needed_reftypes,
    not_ported_steps,
    plan_steps,
    skip_completed,
    step_function,
    step_order,
)

log = logging.getLogger(__name__)


class NothingFittedError(GpucalError):
    """Ramp fitting had nothing to fit (every pixel saturated in its first group); no product."""

#: Copies of one integration block alive at once inside the chain (input, step output, temporaries).
BLOCK_COPIES = 3

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
        from ..io.fits_open import read_header

        value = read_header(Path(gain_ref)).get("GAINFACT")
        return None if value is None else float(value)
    return None


# ------------------------------------------------------------------ plan
def integrations_per_block(ramp: Ramp, budget: int) -> int:
    """Integrations per block so that :data:`BLOCK_COPIES` copies fit half of ``budget``; 0 when one does not."""
    per_int = ramp.ngroups * ramp.ny * ramp.nx * 5  # float32 data + uint8 groupdq
    return int(min((budget // 2) // (BLOCK_COPIES * per_int), ramp.nints))


def rows_per_block(ramp: Ramp, budget: int, halo: int) -> int:
    """Interior rows of one integration's row block (plus ``halo`` rows each side) within half of ``budget``."""
    per_row = BLOCK_COPIES * ramp.ngroups * ramp.nx * 5
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
    """The calibrated ramp being assembled: in memory, or memory-mapped in the scratch directory."""

    def __init__(self, ramp: Ramp, budget: int, scratch: Scratch):
        shape = ramp.shape
        nbytes = int(np.prod(shape, dtype=np.int64)) * 5
        if nbytes <= budget // 2:
            self.data, self.groupdq = np.empty(shape, np.float32), np.empty(shape, np.uint8)
        else:
            workdir = scratch.path()
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
    kw: dict[str, Any] = dict(params, backend=backend)
    if name == "refpix":
        return func(r, exposure_start=exposure_start, **kw)
    kw["max_memory"] = step_memory
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

    def __init__(self, refs, params, backend, step_memory, timer: _Timer, state: dict):
        self.refs, self.params, self.backend = refs, params, backend
        self.step_memory, self.timer, self.state = step_memory, timer, state

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
            one, backend=self.backend, exposure_start=i == 0, out=view, **self.params["refpix"]))
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
    max_device_memory: int | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = True,
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
        clean_flicker_noise (and for MIRI firstframe, refpix; lastframe for MIRI TSO), and
        every step the input's ``S_*`` keywords record as COMPLETE (``{"skip": False}`` runs
        such a step again).
    save_calibrated_ramp : bool
        Also write ``<name>_ramp.fits`` (the ramp after jump / clean_flicker_noise, with the
        ``S_*`` status of every step that ran or was skipped).
    output_dir : path, optional
        Where ``<name>_rate.fits`` and ``<name>_rateints.fits`` go; None writes nothing.
    max_memory : int or str, optional
        Host memory budget (bytes or e.g. ``"2GB"``; default 2 GiB): sets the integration
        blocks, whether the calibrated ramp is memory-mapped, and the steps' row blocks
        (on the GPU: their host copies and pinned staging buffers).
    max_device_memory : int or str, optional
        GPU only: device memory budget (default 70 % of the free memory of the current
        device, never more than is free). Bounds the device chain's integration blocks and
        is jump's and ramp_fit's budget for their blocks in flight; never taken from
        ``max_memory``.
    progress : callable, optional
        ``progress(done, total)`` through the stages: the group-level steps (per integration
        block), jump, clean_flicker_noise and ramp fitting (per pixel block), each an equal
        share of ``total`` (:class:`~gpucal.progress.StagedProgress`).
    overwrite : bool
        Replace existing products in ``output_dir`` (default True; the command line's default
        is False). An output that is one of the inputs (the exposure or a reference file, also
        through a link) or an existing read-only file is always refused, before any work.

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
    OutputError
        An output would be written onto an input, over a read-only file, over an existing
        file without ``overwrite``, or into a directory that cannot be written; nothing is computed.
    NothingFittedError
        Nothing could be fitted (every pixel saturated in its first group).
    """
    return detector1_result(input, refs=refs, backend=backend, steps=steps,
                            save_calibrated_ramp=save_calibrated_ramp, output_dir=output_dir,
                            max_memory=max_memory, max_device_memory=max_device_memory, progress=progress,
                            overwrite=overwrite).rate


def detector1_result(
    input: Ramp | str | os.PathLike[str],
    *,
    refs: Mapping[str, Any] | None = None,
    backend: str | None = "auto",
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    save_calibrated_ramp: bool = False,
    output_dir: str | os.PathLike[str] | None = None,
    max_memory: int | str | None = None,
    max_device_memory: int | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = True,
) -> RampFitResult:
    """As :func:`detector1`, returning the whole :class:`RampFitResult` (rate and rateints)."""
    from ..backend import resolve_backend
    from ..refs.resolve import resolve_references

    start = time.perf_counter()
    backend = resolve_backend(backend)
    ramp, path = _open(input)
    skips, params = plan_steps(ramp, steps)
    completed = skip_completed(ramp, skips, steps)
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
    outputs = None  # checked before the references are read
    if output_dir is not None:
        from ..io.output_safety import check_outputs

        outputs = _output_paths(ramp, path, Path(output_dir), save_calibrated_ramp)
        check_outputs(outputs.values(), [path, *_reference_files(resolved)] if path else _reference_files(resolved),
                      overwrite=overwrite)
    loaded = _load_refs(ramp, {k: v for k, v in resolved.items() if k != "superbias_for_saturation"})
    if "superbias_for_saturation" in resolved:
        sb = resolved["superbias_for_saturation"]
        loaded["superbias_for_saturation"] = (loaded["superbias"] if "superbias" in loaded
                                              else _load_refs(ramp, {"superbias": sb})["superbias"])
    for name in step_order(ramp):  # a CRDS "N/A" reference skips its step
        if not skips[name] and any(resolved.get(t, "") is None for t in STEP_REFTYPES.get(name, ())):
            log.info("detector1: %s skipped, its reference is N/A", name)
            skips[name] = True

    budget = parse_memory(max_memory) or DEFAULT_CPU_MEMORY
    device_memory = parse_memory(max_device_memory)
    # given a budget, the steps share it; else each uses its own default (on the GPU: device memory)
    step_memory = None if max_memory is None else max(budget // 8, 1 << 20)
    tail_memory = None if max_memory is None else budget // 2
    order = [n for n in step_order(ramp) if n not in ("jump", "clean_flicker_noise", "ramp_fit", "gain_scale")]
    late_refpix = miri and not skips["refpix"]
    block_steps = [n for n in order if not skips[n] and not (late_refpix and n == "refpix")]
    timer = _Timer()
    timer.status.update({n: "SKIPPED" for n in step_order(ramp) if skips[n]})
    timer.status.update({n: "COMPLETE" for n in completed})
    tail = [n for n in ("jump", "clean_flicker_noise", "ramp_fit") if not skips[n]]
    stages = StagedProgress(progress, ["group-level steps", *tail], ramp.ny * ramp.nx)
    log.info("detector1: %s on %s, steps %s", ramp, backend, " -> ".join(n for n in step_order(ramp) if not skips[n]))

    with scratch_space(output_dir) as scratch:
        cal = _Calibrated(ramp, budget, scratch)
        block_budget = budget
        if backend == "gpu":
            from ..gpu.budget import device_budget

            # the whole block and the steps' block-sized temporaries live on the device at once
            block_budget = min(budget, device_budget(device_memory) // 2)
        per_block = integrations_per_block(ramp, block_budget)
        progress = stages.stage("group-level steps")
        state: dict[str, Any] = {}
        chain = _Chain(loaded, params, backend, step_memory, timer, state)
        if per_block == 0:
            halo = _halo(block_steps, loaded, params)
            rows = rows_per_block(ramp, block_budget, halo)
            log.info("one integration exceeds half the memory budget of %.1f MiB: streaming row blocks of %d "
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
                calibrated, backend=backend, out=calibrated.data, **params["refpix"]))
            timer.status["refpix"] = _status("refpix", calibrated, state)
        result = _tail(calibrated, skips, params, loaded, resolved, state, backend, tail_memory, device_memory,
                       timer, stages)
        provenance = _provenance(ramp, path, resolved, timer.status)
        for product in (result.rate, result.rateints):
            if product is not None:
                product.meta.update(provenance)
        for name, sec in timer.seconds.items():
            log.info("detector1: %-20s %8.3f s", name, sec)
        if outputs is not None:
            saved = None
            if save_calibrated_ramp:
                ramp_done = state["calibrated_ramp"]
                keep = {k: v for k, v in provenance.items() if k not in (STATUS_KEYWORDS["ramp_fit"],
                                                                         STATUS_KEYWORDS["gain_scale"])}
                saved = like(ramp_done, ramp_done.data, ramp_done.groupdq, ramp_done.pixeldq, ramp_done.zeroframe,
                             **keep)
            _write(result, saved, outputs, overwrite)
    log.info("detector1: done in %.2f s", time.perf_counter() - start)
    return result


def _tail(ramp: Ramp, skips, params, loaded, resolved, state, backend, memory, device_memory, timer: _Timer,
          stages: StagedProgress) -> RampFitResult:
    """jump, clean_flicker_noise, ramp_fit, gain_scale on the calibrated ramp: ``memory`` is their
    host budget, ``device_memory`` their device budget (None: each one's default)."""
    gain, readnoise = loaded.get("gain"), loaded.get("readnoise")
    if not skips["jump"]:
        jump_progress = stages.stage("jump")
        ramp = timer.run("jump", lambda: step_function("jump")(ramp, gain, readnoise, backend=backend,
                                                               max_memory=memory, max_device_memory=device_memory,
                                                               progress=jump_progress,
                                                               **params["jump"]))
        timer.status["jump"] = "COMPLETE"
    if not skips["clean_flicker_noise"]:
        import inspect

        cfn = step_function("clean_flicker_noise")
        extra = {"max_memory": memory} if "max_memory" in inspect.signature(cfn).parameters else {}
        if backend == "gpu" and extra:  # one budget for its blocks, on the host and the device
            from ..gpu.budget import device_budget
            from ..steps._blocks import DEFAULT_BLOCK_BYTES

            extra["max_memory"] = min(memory or DEFAULT_BLOCK_BYTES, device_budget(device_memory))
        cfn_progress = stages.stage("clean_flicker_noise")
        ramp = timer.run("clean_flicker_noise", lambda: cfn(ramp, backend=backend, **extra,
                                                             **params["clean_flicker_noise"]))
        if cfn_progress is not None:
            cfn_progress(1, 1)
        timer.status["clean_flicker_noise"] = "COMPLETE"
    state["calibrated_ramp"] = ramp
    if skips["ramp_fit"]:
        raise InputError("ramp_fit cannot be skipped: detector1 returns the rate product")
    fit_progress = stages.stage("ramp_fit")
    result = timer.run("ramp_fit", lambda: step_function("ramp_fit")(
        ramp, gain, readnoise, backend=backend, max_memory=memory, max_device_memory=device_memory,
        progress=fit_progress,
        average_dark_current=state.get("average_dark_current"), **params["ramp_fit"]))
    timer.status["ramp_fit"] = "COMPLETE"
    if result.rate is None:
        raise NothingFittedError("nothing could be fitted (every pixel saturated in its first group, or fewer than two "
                          "usable groups); no product written")
    if not skips["gain_scale"]:
        factor = _gain_factor(ramp, resolved.get("gain"))
        gs = step_function("gain_scale")
        result.rate = timer.run("gain_scale", lambda: gs(result.rate, factor, backend=backend))
        if result.rateints is not None and factor is not None:  # (a skip is logged once)
            result.rateints = gs(result.rateints, factor, backend=backend)
        timer.status["gain_scale"] = "SKIPPED" if factor is None else "COMPLETE"
    return result


def _output_paths(ramp: Ramp, path: Path | None, out_dir: Path, save_calibrated_ramp: bool) -> dict[str, Path]:
    """The products this run writes into ``out_dir``, by kind."""
    from ..io import output_prefix

    name = path if path is not None else Path(str(ramp.meta.get("FILENAME") or "gpucal_uncal.fits"))
    prefix = output_prefix(name, out_dir)
    kinds = (["ramp"] if save_calibrated_ramp else []) + ["rate", "rateints"]
    return {kind: prefix.parent / f"{prefix.name}_{kind}.fits" for kind in kinds}


def _reference_files(resolved: Mapping[str, Any]) -> list[Path]:
    """The resolved references that are files (the inputs besides the exposure)."""
    return [Path(v) for v in resolved.values() if isinstance(v, (str, os.PathLike))]


def _provenance(ramp: Ramp, path: Path | None, resolved: Mapping[str, Any], status: Mapping[str, str]) -> dict:
    """Primary-header keywords of the products: every step's ``S_*`` status (the steps gpucal
    does not port SKIPPED, unless the input says an earlier run did them) and the ``R_*``
    reference files used, as absolute paths, so a product read from another directory still
    finds them."""
    from ..refs.resolve import reference_keywords

    meta: dict[str, Any] = {}
    for name in not_ported_steps(ramp):
        keyword = STATUS_KEYWORDS[name]
        meta[keyword] = "COMPLETE" if str(ramp.meta.get(keyword, "")).upper() == "COMPLETE" else "SKIPPED"
    meta.update({STATUS_KEYWORDS[n]: s for n, s in status.items() if n in STATUS_KEYWORDS})
    used = {k: v for k, v in resolved.items() if k != "superbias_for_saturation"}
    meta.update(reference_keywords(used, ramp.meta, None if path is None else path.parent))
    return meta


def _write(result: RampFitResult, calibrated: Ramp | None, outputs: Mapping[str, Path], overwrite: bool) -> None:
    """Write the products (each atomically); remove this run's files if one of them fails."""
    next(iter(outputs.values())).parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        if calibrated is not None:
            written.append(calibrated.to_fits(outputs["ramp"], overwrite=overwrite))
        written.append(result.rate.to_fits(outputs["rate"], overwrite=overwrite))
        if result.rateints is not None:
            written.append(result.rateints.to_fits(outputs["rateints"], overwrite=overwrite))
    except BaseException:
        for p in written:
            Path(p).unlink(missing_ok=True)
        raise
    for p in written:
        log.info("wrote %s", p)
