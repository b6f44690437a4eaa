"""Which detector1 steps run, in what order, with which parameters and reference types.

Order follows jwst 3.0.0 ``Detector1Pipeline.process``; skip defaults follow the
calwebb_detector1 table (spec detector1_steps.md section 2): ipc, clean_flicker_noise,
persistence and (MIRI) firstframe are off everywhere, refpix is off for MIRI, lastframe is
off for MIRI TSO. TSO is read from TSOVISIT, the keyword CRDS selects the parameter file by.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any

from ..errors import InputError
from ..ramp import Ramp

logger = logging.getLogger(__name__)

#: Group-level steps run per integration block, in order.
NIR_GROUP_STEPS = ("group_scale", "dq_init", "saturation", "ipc", "superbias", "refpix", "linearity",
                   "dark_current")
MIRI_GROUP_STEPS = ("group_scale", "dq_init", "saturation", "ipc", "firstframe", "lastframe", "linearity",
                    "dark_current", "refpix")
#: Steps on the whole calibrated ramp / its rate products.
TAIL_STEPS = ("jump", "clean_flicker_noise", "ramp_fit", "gain_scale")
#: jwst steps gpucal does not port: accepted only as skipped.
NOT_PORTED = ("emicorr", "reset", "rscd", "charge_migration", "picture_frame", "persistence")
ALL_STEPS = tuple(dict.fromkeys(NIR_GROUP_STEPS + MIRI_GROUP_STEPS + TAIL_STEPS))

#: Reference types each step needs (saturation also uses SUPERBIAS on near-IR when one exists).
STEP_REFTYPES = {
    "dq_init": ("mask",), "saturation": ("saturation",), "ipc": ("ipc",), "superbias": ("superbias",),
    "linearity": ("linearity",), "dark_current": ("dark",), "jump": ("gain", "readnoise"),
    "ramp_fit": ("gain", "readnoise"), "gain_scale": ("gain",),
}

#: jwst's cal_step keyword for each step, recorded in the product's meta.
STATUS_KEYWORDS = {
    "group_scale": "S_GRPSCL", "dq_init": "S_DQINIT", "saturation": "S_SATURA", "ipc": "S_IPC",
    "superbias": "S_SUPERB", "refpix": "S_REFPIX", "linearity": "S_LINEAR", "dark_current": "S_DARK",
    "firstframe": "S_FRSTFR", "lastframe": "S_LASTFR", "jump": "S_JUMP", "clean_flicker_noise": "S_CLNFNS",
    "ramp_fit": "S_RAMP", "gain_scale": "S_GANSCL",
    # not ported: always SKIPPED here (unless the input says an earlier run did them)
    "emicorr": "S_MIREMI", "reset": "S_RESET", "rscd": "S_RSCD", "charge_migration": "S_CHGMIG",
    "picture_frame": "S_PCTFRM", "persistence": "S_PERSIS",
}
#: Steps that work on the ramp (the rest, ramp_fit and gain_scale, make and scale the rate products).
RAMP_STEPS = tuple(s for s in ALL_STEPS if s not in ("ramp_fit", "gain_scale"))

# Pipeline-managed arguments, never taken from ``steps=`` overrides.
_MANAGED = {"ramp", "backend", "max_memory", "max_device_memory", "progress", "gain", "readnoise", "product",
            "gain_factor", "exposure_start", "user_dq"}
# jwst parameter names mapped to gpucal's, per step.
_ALIASES = {"dq_init": {"user_supplied_dq": "user_dq"}}


def is_miri(ramp: Ramp) -> bool:
    return ramp.instrument == "MIRI" or str(ramp.meta.get("DETECTOR", "")).strip().upper().startswith("MIR")


def is_tso(ramp: Ramp) -> bool:
    value = ramp.meta.get("TSOVISIT", False)
    return str(value).strip().upper() in ("T", "TRUE", "1") if isinstance(value, str) else bool(value)


def step_order(ramp: Ramp) -> tuple[str, ...]:
    """The exposure's steps in run order (group-level steps, then the tail)."""
    return (MIRI_GROUP_STEPS if is_miri(ramp) else NIR_GROUP_STEPS) + TAIL_STEPS


def not_ported_steps(ramp: Ramp) -> tuple[str, ...]:
    """The jwst detector1 steps of this exposure's branch that gpucal does not port (recorded SKIPPED)."""
    both = ("charge_migration", "picture_frame", "persistence")
    return ("emicorr", "reset", "rscd") + both if is_miri(ramp) else both


def skip_completed(ramp: Ramp, skips: dict[str, bool], steps: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    """Skip (in ``skips``) the ramp steps the input records as done (its ``S_*`` keyword is COMPLETE).

    A calibrated ramp (``--save-calibrated-ramp``, or jwst's ``_ramp.fits``) run through
    detector1 again would otherwise have its bias, linearity and dark applied twice. A step
    the caller asks for explicitly (``steps={"dark_current": {"skip": False}}``, ``--run
    dark_current``) runs again, with a warning. jwst 3.0.0's Detector1Pipeline has no such
    check (it re-applies every step); the rule follows jwst's master_background step, which
    skips a correction already COMPLETE unless forced. Returns the steps skipped.
    """
    forced = {name for name, opts in (steps or {}).items() if isinstance(opts, Mapping) and opts.get("skip") is False}
    done = []
    for name in step_order(ramp):
        if name not in RAMP_STEPS or str(ramp.meta.get(STATUS_KEYWORDS[name], "")).strip().upper() != "COMPLETE":
            continue
        if name in forced:
            logger.warning("detector1: %s runs again although the input records it COMPLETE (%s): it was asked for",
                           name, STATUS_KEYWORDS[name])
        elif not skips[name]:
            logger.info("detector1: %s skipped: the input records it COMPLETE (%s)", name, STATUS_KEYWORDS[name])
            skips[name] = True
            done.append(name)
    return done


def default_skips(ramp: Ramp) -> dict[str, bool]:
    """``{step: skip}`` defaults for this exposure (near-IR vs MIRI, TSO vs not)."""
    skips = {name: False for name in step_order(ramp)}
    skips.update(ipc=True, clean_flicker_noise=True)
    if is_miri(ramp):
        skips.update(firstframe=True, refpix=True, lastframe=is_tso(ramp))
    return skips


def step_function(name: str) -> Any:
    """The gpucal callable behind a step name (imported lazily)."""
    if name == "jump":
        from ..jump_detection import detect_jumps

        return detect_jumps
    if name == "ramp_fit":
        from ..ramp_fitting import ramp_fit

        return ramp_fit
    from .. import steps

    func = getattr(steps, name, None)
    if func is None:
        raise InputError(f"step {name!r} is not available in this gpucal build (gpucal.steps.{name} missing)")
    return func


def _allowed_params(name: str) -> set[str]:
    try:
        sig = inspect.signature(step_function(name))
    except InputError:
        return set()
    params = {p for p, v in sig.parameters.items()
              if v.kind is inspect.Parameter.KEYWORD_ONLY and p not in _MANAGED}
    return params | set(_ALIASES.get(name, {}))


def plan_steps(ramp: Ramp, steps: Mapping[str, Mapping[str, Any]] | None) -> tuple[dict[str, bool], dict[str, dict]]:
    """Merge ``steps={"refpix": {"skip": True}, "jump": {"rejection_threshold": 5}}`` into the defaults.

    Returns ``(skips, params)``: params are gpucal keyword arguments (jwst names translated).

    Raises
    ------
    InputError
        Unknown step or parameter (the allowed ones are named), or a non-ported step switched on.
    """
    skips = default_skips(ramp)
    params: dict[str, dict] = {name: {} for name in skips}
    for name, opts in (steps or {}).items():
        if not isinstance(opts, Mapping):
            raise InputError(f"steps[{name!r}] must be a dict of parameters, got {type(opts).__name__}")
        if name in NOT_PORTED:
            if not opts.get("skip", True) or set(opts) - {"skip"}:
                raise InputError(f"step {name!r} is not ported to gpucal; it can only be skipped")
            continue
        if name not in skips:
            raise InputError(f"unknown step {name!r} for this exposure; steps are {list(skips)}")
        opts = dict(opts)
        if "skip" in opts:
            skips[name] = bool(opts.pop("skip"))
        allowed = _allowed_params(name)
        bad = sorted(set(opts) - allowed)
        if bad:
            raise InputError(f"unknown parameter(s) {bad} for step {name!r}; allowed: {sorted(allowed)}")
        aliases = _ALIASES.get(name, {})
        params[name] = {aliases.get(k, k): v for k, v in opts.items()}
    for name, skip in skips.items():
        if not skip:
            step_function(name)  # fail now, not after the group-level steps, if a step is missing
    return skips, params


def needed_reftypes(ramp: Ramp, skips: Mapping[str, bool]) -> list[str]:
    """Reference types the enabled steps need (order of first use)."""
    out: list[str] = []
    for name in step_order(ramp):
        if not skips.get(name, True):
            out += [t for t in STEP_REFTYPES.get(name, ()) if t not in out]
    return out
