"""Adversarial ramp exposures shared by the parity and identity tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gpucal import dq


@dataclass
class Case:
    name: str
    data: np.ndarray
    groupdq: np.ndarray
    pixeldq: np.ndarray
    gain: np.ndarray
    readnoise: np.ndarray
    group_time: float = 10.737
    frame_time: float = 10.737
    nframes: int = 1
    groupgap: int = 0
    drop_frames1: int = 0
    zeroframe: np.ndarray | None = None
    instrument: str = "NIRCAM"
    suppress_one_group: bool = True
    average_dark_current: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def ramp(self):
        from gpucal.ramp import Ramp

        return Ramp(self.data, self.groupdq, self.pixeldq, group_time=self.group_time, frame_time=self.frame_time,
                    nframes=self.nframes, groupgap=self.groupgap, drop_frames1=self.drop_frames1,
                    zeroframe=self.zeroframe, meta={"INSTRUME": self.instrument})


def random_case(name, nints, ngroups, ny, nx, *, seed, flag_rate=0.08, suppress=True, zeroframe=False,
                instrument="NIRCAM", nframes=1, groupgap=0, chargeloss=False, nan_data=False,
                bad_refs=True, dark=False) -> Case:
    """A ramp with realistic slopes and noise and random flags of every kind."""
    rng = np.random.default_rng(seed)
    t_frame = 10.737 if instrument != "MIRI" else 2.775
    t_group = t_frame * (nframes + groupgap)
    rate = rng.choice([rng.uniform(-2, 2), 1.0], size=(ny, nx)) * rng.lognormal(0.5, 1.8, (ny, nx))
    rate[rng.random((ny, nx)) < 0.1] *= -1
    times = (np.arange(ngroups) + 1)[None, :, None, None] * t_group
    data = 1000.0 + times * rate[None, None] + rng.normal(0, 12, (nints, ngroups, ny, nx))
    gdq = np.zeros((nints, ngroups, ny, nx), np.uint8)
    u = rng.random((nints, ngroups, ny, nx))
    gdq[u < flag_rate] |= dq.JUMP_DET
    jump = gdq & dq.JUMP_DET
    data += np.cumsum(jump.astype(np.float64) * rng.uniform(100, 3000, data.shape), axis=1)
    gdq[(u > 1 - flag_rate / 2)] |= dq.DO_NOT_USE
    gdq[(u > 0.3) & (u < 0.3 + flag_rate / 4)] |= dq.PERSISTENCE
    gdq[(u > 0.5) & (u < 0.5 + flag_rate / 8)] |= dq.JUMP_DET | dq.DO_NOT_USE
    if chargeloss:
        gdq[(u > 0.6) & (u < 0.6 + flag_rate)] |= dq.CHARGELOSS | dq.DO_NOT_USE
        gdq[(u > 0.7) & (u < 0.7 + flag_rate / 4)] |= dq.CHARGELOSS
    # saturation: from a random group to the end of the ramp
    sat_start = rng.integers(0, ngroups + 4, size=(nints, ny, nx))
    sat = np.arange(ngroups)[None, :, None, None] >= sat_start[:, None]
    sat &= rng.random((nints, 1, ny, nx)) < 0.25
    gdq[sat] |= dq.SATURATED
    data[sat] = 65000.0
    if nan_data:
        data[rng.random(data.shape) < 0.01] = np.nan
    pdq = np.zeros((ny, nx), np.uint32)
    pdq[rng.random((ny, nx)) < 0.02] = dq.DO_NOT_USE | dq.PIXEL["DEAD"]
    pdq[rng.random((ny, nx)) < 0.02] |= dq.PIXEL["HOT"]
    gain = rng.uniform(1.6, 2.4, (ny, nx)).astype(np.float32)
    readnoise = rng.uniform(6, 16, (ny, nx)).astype(np.float32)
    if bad_refs:
        gain.flat[rng.choice(ny * nx, 3, replace=False)] = np.nan
        gain.flat[rng.choice(ny * nx, 2, replace=False)] = 0.0
        gain.flat[rng.choice(ny * nx, 1)] = -1.0
        readnoise.flat[rng.choice(ny * nx, 1)] = 0.0
        readnoise.flat[rng.choice(ny * nx, 1)] = np.nan
        readnoise.flat[rng.choice(ny * nx, 1)] = 1e5
    zf = None
    if zeroframe:
        zf = (1000.0 + 0.5 * t_frame * rate[None] + rng.normal(0, 12, (nints, ny, nx))).astype(np.float32)
        zf[rng.random(zf.shape) < 0.2] = 0.0
        # make some ramps saturate from group 0 so the ZEROFRAME is used
        first = rng.random((nints, ny, nx)) < 0.15
        gdq[:, :][np.broadcast_to(first[:, None], gdq.shape)] |= dq.SATURATED
    dark_current = rng.uniform(0, 0.05, (ny, nx)).astype(np.float32) if dark else None
    return Case(name=name, data=data.astype(np.float32), groupdq=gdq, pixeldq=pdq, gain=gain, readnoise=readnoise,
                group_time=t_group, frame_time=t_frame, nframes=nframes, groupgap=groupgap,
                zeroframe=zf, instrument=instrument, suppress_one_group=suppress, average_dark_current=dark_current)


def standard_cases() -> list[Case]:
    """The parity matrix: group counts, integrations, suppression, ZEROFRAME, MIRI, CHARGELOSS."""
    cases = [
        random_case("nir-10g", 1, 10, 24, 32, seed=1),
        random_case("nir-10g-3int", 3, 10, 16, 20, seed=2),
        random_case("nir-1g", 2, 1, 12, 16, seed=3, suppress=False),
        random_case("nir-1g-suppress", 2, 1, 12, 16, seed=4),
        random_case("nir-2g", 2, 2, 16, 16, seed=5),
        random_case("nir-3g", 2, 3, 16, 16, seed=6),
        random_case("nir-4g-nosuppress", 2, 4, 16, 16, seed=7, suppress=False),
        random_case("nir-5g-zeroframe", 2, 5, 16, 16, seed=8, suppress=False, zeroframe=True),
        random_case("nframes4-gap2", 2, 6, 16, 16, seed=9, nframes=4, groupgap=2),
        random_case("many-short-segments", 1, 20, 16, 16, seed=10, flag_rate=0.35),
        random_case("miri-30g", 2, 30, 12, 12, seed=11, instrument="MIRI"),
        random_case("chargeloss", 2, 8, 16, 16, seed=12, chargeloss=True),
        random_case("nan-data-dark", 2, 7, 16, 16, seed=13, nan_data=True, dark=True),
    ]
    miri = random_case("miri-discard", 2, 8, 10, 10, seed=14, instrument="MIRI")
    miri.groupdq[:, 0] |= dq.DO_NOT_USE
    miri.groupdq[:, 1] |= dq.DO_NOT_USE
    miri.groupdq[:, 2] |= dq.JUMP_DET * (np.arange(100).reshape(10, 10) % 3 == 0).astype(np.uint8)
    miri.groupdq[:, -1] |= dq.DO_NOT_USE
    cases.append(miri)
    return cases


def fuzz_case(seed: int, *, ny: int, nx: int, max_groups: int) -> Case:
    """A random case with every knob drawn from ``seed``: shape, flags, modes, timing."""
    rng = np.random.default_rng(seed)
    return random_case(
        f"fuzz{seed}", int(rng.integers(1, 4)), int(rng.integers(1, max_groups + 1)), ny, nx, seed=seed,
        flag_rate=float(rng.uniform(0.0, 0.5)), suppress=bool(rng.integers(0, 2)),
        zeroframe=bool(rng.integers(0, 2)), chargeloss=bool(rng.integers(0, 2)),
        nan_data=bool(rng.integers(0, 2)), dark=bool(rng.integers(0, 2)),
        instrument=str(rng.choice(["NIRCAM", "MIRI"])), nframes=int(rng.integers(1, 5)),
        groupgap=int(rng.integers(0, 3)))
