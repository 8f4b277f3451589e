"""The anatomical phantom: analytic 3-D shapes sampled on any image plane (numpy only).

    ph = Phantom(sample_patient(0, 3))
    img, masks = ph.render(plane, "cine", t=0.25, masks=True)   # float, blood pool ~ 1
    ph.noisy(img, rng)                                            # Rician noise, bias field

Shapes, in the heart frame of `geometry` (mm; z along the long axis, base plane z = 0):
- LV cavity and epicardium: half prolate ellipsoids below the base plane.  The endocardial
  radius shrinks over the cycle by the contraction curve `contraction(t)` (scaled down
  inside an infarct territory: the regional wall-motion abnormality); the epicardium keeps
  the wall's cross-section, so the wall thickens in systole.  Wall thickness varies with
  angle (HCM septal bulge, infarct thinning).
- RV: an ellipsoid on the septal side minus the LV; LA, RA, ascending aorta; pericardial
  effusion as a fluid shell.
- Mitral regurgitation (`mr_jet`): on cine, in systole, a signal-void plume from the
  mitral orifice into the LA; the long-axis views cut it, the SAX stack (below the base
  plane) and LGE (no flow) do not show it.
- Body: chest wall with subcutaneous fat, lungs, spine, descending aorta, liver.
Partial volume: every shape's edge is a one-pixel ramp of its approximate signed distance.

LGE (`"lge"`, ED geometry): normal myocardium nulled; the scar field (`scar_field`) lights
up subendocardial-to-transmural scar in one coronary territory (ICM), a mid-wall band
(NICM), RV insertion-point patches (HCM) or diffuse subendocardial enhancement with a dark
blood pool and poorly nulled myocardium (amyloid).
"""
from __future__ import annotations

import numpy as np

from cmr_ray.synth.geometry import HeartFrame, Plane, dot3
from cmr_ray.synth.patients import Patient

SIGNAL = {  # relative signal per sequence ("t1" in ms)
    "cine": dict(air=0.0, tissue=0.28, fat=0.75, lung=0.04, liver=0.33, blood=1.0, myo=0.30, bone=0.45, fluid=0.9, scar=0.30),
    "lge": dict(air=0.0, tissue=0.18, fat=0.55, lung=0.03, liver=0.35, blood=0.42, myo=0.03, bone=0.30, fluid=0.15, scar=1.0),
    "t1": dict(air=0.0, tissue=1100, fat=280, lung=0.0, liver=600, blood=1600, myo=1000, bone=500, fluid=3000, scar=1180),
}
TERRITORY = {  # angle centre, half-width (deg), z range as a fraction of LV length, apical cap
    "LAD": (60.0, 55.0, (-1.3, -0.2), True),
    "LCx": (180.0, 50.0, (-0.75, 0.05), False),
    "RCA": (290.0, 45.0, (-0.75, 0.05), False),
}
LONG_RATIO = 0.5  # longitudinal shortening as a fraction of radial shortening
LEVEL_Z = {"basal": (-0.33, 0.05), "mid": (-0.67, -0.33), "apical": (-1.3, -0.67)}  # z / LV length
AORTA_RADIUS = 12.0
HEART_ORIGIN = np.array([10.0, 20.0, 30.0])  # LPS mm, centre of the LV base plane


def _soft(d, px):
    return np.minimum(np.maximum(0.5 - d / px, 0.0), 1.0)  # np.clip is slow on small arrays


def _window(x, lo, hi, soft):
    return np.clip(np.minimum(x - lo, hi - x) / soft + 0.5, 0.0, 1.0)


def _ang_window(phi_deg, centre, half, soft=12.0):
    d = np.abs((phi_deg - centre + 180.0) % 360.0 - 180.0)
    return np.clip((half - d) / soft + 0.5, 0.0, 1.0)


def _ellipsoid_d(dx, dy, dz, a, b, c):
    """Approximate signed distance to an axis-aligned ellipsoid (negative inside)."""
    f = (dx / a) ** 2 + (dy / b) ** 2 + (dz / c) ** 2
    g = 2.0 * np.sqrt((dx / a**2) ** 2 + (dy / b**2) ** 2 + (dz / c**2) ** 2) + 1e-6
    return (f - 1.0) / g


def contraction(t: float, t_es: float) -> float:
    """Systolic shortening over the RR interval: 0 at end-diastole (t=0), 1 at end-systole."""
    t = t % 1.0
    if t < t_es:
        return 0.5 * (1.0 - np.cos(np.pi * t / t_es))
    r = (t - t_es) / 0.3
    if r < 1.0:  # rapid filling
        return 0.15 + 0.85 * 0.5 * (1.0 + np.cos(np.pi * r))
    return max(0.0, 0.15 * (1.0 - (t - t_es - 0.3) / max(0.95 - t_es - 0.3, 1e-3)))  # diastasis, atrial kick


MR_LATE = 0.06  # the jet lasts past end-systole through isovolumic relaxation (cycle fraction)


def mr_flow(t: float, t_es: float) -> float:
    """How strongly a mitral regurgitant jet shows at cycle fraction t: holosystolic, from
    valve closure at end-diastole (t=0) to the end of isovolumic relaxation, full for most of it."""
    t, end = t % 1.0, t_es + MR_LATE
    return float(min(1.0, 2.0 * np.sin(np.pi * t / end))) if t < end else 0.0


def radial_shortening(ef: float) -> float:
    """c with (1 - c)^2 (1 - LONG_RATIO c) = 1 - EF (ellipsoid volume ratio at end-systole)."""
    lo, hi = 0.0, 0.99
    for _ in range(50):
        c = (lo + hi) / 2
        if (1 - c) ** 2 * (1 - LONG_RATIO * c) > 1 - ef / 100.0:
            lo = c
        else:
            hi = c
    return (lo + hi) / 2


class _PlaneCache:
    """Heart-frame coordinates of one plane's pixels and everything static on them."""

    def __init__(self, ph: "Phantom", plane: Plane):
        pts = plane.points().reshape(-1, 3)
        self.shape = plane.shape
        self.px = float(min(plane.spacing))
        h = ph.frame.to_heart(pts)
        reach = ph.reach
        near = (h[:, 2] < 4 * self.px + 2) & (h[:, 2] > -(ph.L0 + ph.apex_wall + 6)) & \
               (np.hypot(h[:, 0], h[:, 1]) < reach)
        self.near = np.flatnonzero(near)
        self.x, self.y, self.z = h[self.near, 0], h[self.near, 1], h[self.near, 2]
        self.rho = np.hypot(self.x, self.y)
        self.phi = np.degrees(np.arctan2(self.y, self.x)) % 360.0
        self.zn = self.z / ph.L0
        self.terr = ph.territory_field(self.phi, self.zn)
        self.wall = ph.wall_field(self.phi, self.zn, self.terr)
        self.pts, self.h = pts, h
        self.static = {}
        d = pts - ph.frame.origin
        self.bias = 1.0 + ph.bias_strength * (d[:, 0] * ph.bias_dir[0] + d[:, 1] * ph.bias_dir[1] + d[:, 2] * ph.bias_dir[2]) / 150.0


class Phantom:
    def __init__(self, p: Patient):
        self.p = p
        self.frame = HeartFrame.from_angles(HEART_ORIGIN, p.yaw, p.pitch, p.roll)
        self.R0, self.L0 = p.lv_edd_mm / 2, p.lv_length_mm
        self.apex_wall = max(0.75 * p.wall_mm, 5.0)
        self.cr = radial_shortening(p.ef_target)
        re = self.R0 + p.wall_mm
        s = p.rv_scale
        self.rv_centre = (0.75 * re, 4.0)
        self.rv_axes = ((0.75 * re + 4.0) * s, (1.05 * re + 4.0) * s, 0.75 * (self.L0 + self.apex_wall) * s ** 0.5)
        self.rv_wall = 6.0 if p.pathology == "amyloid" else 3.5
        self.reach = self.rv_centre[0] + self.rv_axes[0] + p.effusion_mm + 10.0
        self.rvip = self._insertion_angles()
        rng = np.random.default_rng([p.seed, p.index, 2])
        self.signal = {k: {t: v * (1.0 if t in ("air", "blood") else rng.uniform(0.9, 1.1)) for t, v in table.items()}
                       for k, table in SIGNAL.items()}
        if p.pathology == "amyloid":
            self.signal["lge"].update(blood=0.12 * rng.uniform(0.8, 1.2), myo=0.28 * rng.uniform(0.85, 1.15))
            self.signal["t1"]["myo"] = 1180.0
        self.bias_dir = rng.normal(size=3)
        self.bias_dir /= np.sqrt(dot3(self.bias_dir, self.bias_dir))
        self.bias_strength = rng.uniform(0.0, 0.25)
        self._cache: dict = {}

    # --- fields over the myocardium -------------------------------------------------
    def territory_field(self, phi, zn):
        if not self.p.territory:
            return np.zeros_like(phi)
        centre, half, (zlo, zhi), cap = TERRITORY[self.p.territory]
        levels = self.p.scar_levels
        if levels:  # the infarct's own extent along the long axis (patients.SCAR_LEVELS)
            zlo, zhi = LEVEL_Z[levels[-1]][0], LEVEL_Z[levels[0]][1]
            cap = cap and "apical" in levels
        t = _ang_window(phi, centre, half) * _window(zn, zlo, zhi, 0.06)
        if cap:
            t = np.maximum(t, _window(zn, -2.0, -0.72, 0.06))
        return t

    def wall_field(self, phi, zn, terr):
        p = self.p
        w = np.full_like(phi, p.wall_mm)
        if p.septal_mm > p.wall_mm:
            bulge = _ang_window(phi, 0.0, 35.0, 40.0) * np.exp(-(((zn + 0.35) / 0.4) ** 2))
            w = w + (p.septal_mm - p.wall_mm) * bulge
        if p.territory:
            w = w * (1.0 - 0.35 * terr * max(0.0, (p.transmurality - 0.6) / 0.4))
        return w

    def _insertion_angles(self):
        """Angles where the RV free wall meets the LV epicardium (anterior, inferior)."""
        phi = np.radians(np.arange(0.0, 180.0, 0.5))
        re = self.R0 + self.p.wall_mm
        a, b, _ = self.rv_axes
        xc, yc = self.rv_centre
        out = []
        for sign in (1.0, -1.0):
            f = ((re * np.cos(phi) - xc) / a) ** 2 + ((sign * re * np.sin(phi) - yc) / b) ** 2
            k = int(np.argmax(f > 1.0)) if np.any(f > 1.0) else len(phi) - 1
            out.append(float(np.degrees(phi[k])) if sign > 0 else float(360.0 - np.degrees(phi[k])))
        return tuple(out)

    def scar_field(self, tau, phi, zn, terr):
        p, pat = self.p, self.p.lge_pattern
        if pat == "none":
            return np.zeros_like(tau)
        if pat in ("subendocardial", "transmural"):
            return terr * np.clip((p.transmurality - tau) / 0.08 + 0.5, 0.0, 1.0)
        if pat == "midwall":
            g = p.lge
            band = np.clip((g["half_width"] - np.abs(tau - g["centre"])) / 0.08 + 0.5, 0.0, 1.0)
            region = _ang_window(phi, 0.0, 50.0) * _window(zn, -0.7, -0.02, 0.06)
            if "inferolateral" in g["regions"]:
                region = np.maximum(region, _ang_window(phi, 225.0, 35.0) * _window(zn, -0.7, -0.05, 0.06))
            patch = 0.75 + 0.25 * np.cos(np.radians(3 * phi + g["patch"]))
            return region * band * patch
        if pat == "rv_insertion":
            g = p.lge
            ang = sum(np.exp(-((((phi - c + 180.0) % 360.0) - 180.0) / g["width_deg"]) ** 2) for c in self.rvip)
            band = np.clip((0.42 - np.abs(tau - 0.5)) / 0.08 + 0.5, 0.0, 1.0)
            return np.clip(ang, 0, 1) * band * _window(zn, -0.8, 0.0, 0.08) * g["strength"]
        if pat == "diffuse_subendocardial":
            return np.clip((p.lge["depth"] - tau) / 0.1 + 0.5, 0.0, 1.0) * (0.85 + 0.15 * np.cos(np.radians(2 * phi)))
        raise ValueError(f"unknown LGE pattern {pat!r}")

    @property
    def la(self):
        """Left atrium: heart-frame centre (x, y, z) and blood-pool radius, above the base plane."""
        r, a = 19.0 * self.p.atria_scale, np.radians(225.0)
        return 0.45 * self.R0 * np.cos(a), 0.45 * self.R0 * np.sin(a), r + 3.0, r

    @property
    def ra(self):
        """Right atrium, as `la`."""
        r = 17.0 * self.p.atria_scale
        return self.rv_centre[0] + 0.3 * self.rv_axes[0], -4.0, r + 3.0, r

    def mr_jet(self, c: "_PlaneCache") -> np.ndarray:
        """Where the mitral regurgitant jet dephases the LA blood on this plane, in [0, 1]:
        a plume from the mitral orifice (the LA's floor, at the base plane) up into the LA,
        longer and wider with the grade (patients.MR_GRADES).  Zero everywhere without MR."""
        if "mr_jet" not in c.static:
            g = self.p.mr
            jet = np.zeros(len(c.pts))
            if g:
                cx, cy, cz, r = self.la
                x, y, z = c.h[:, 0], c.h[:, 1], c.h[:, 2]
                reach = (0.35, 0.6, 0.9)[g - 1] * 2 * r  # along the LA's height
                width = 3.0 + (0.25 + 0.15 * g) * np.maximum(z, 0.0)  # half-width, mm
                plume = _soft(np.hypot(x - cx, y - cy) - width, c.px) * _window(z, 0.0, reach, 3.0)
                jet = plume * _soft(_ellipsoid_d(x - cx, y - cy, z - cz, r, r, r), c.px)
            c.static["mr_jet"] = jet
        return c.static["mr_jet"]

    @property
    def aorta_xy(self):
        """Heart-frame (x, y) of the ascending aorta's axis (it runs along u from the base)."""
        r = 0.4 * self.R0 + 14.0
        return r * np.cos(np.radians(45.0)), r * np.sin(np.radians(45.0))

    def _aorta_d(self, x, y, z):
        ax, ay = self.aorta_xy
        return np.maximum(np.hypot(x - ax, y - ay) - AORTA_RADIUS, np.maximum(-z - 2.0, z - 55.0))

    def velocity(self, plane: Plane, t: float, rng: np.random.Generator, venc: float) -> np.ndarray:
        """Through-plane velocity (cm/s) for a phase-contrast image: systolic ejection in the
        aortic lumen, noise elsewhere (pure phase noise where there is no signal)."""
        c = self._cache_for(plane)
        lumen = _soft(self._aorta_d(c.h[:, 0], c.h[:, 1], c.h[:, 2]), c.px)
        peak = 0.8 * venc * (0.6 + 0.4 * self.p.ef_target / 70.0)
        v_t = peak * max(0.0, np.sin(np.pi * (t % 1.0) / self.p.t_es)) if (t % 1.0) < self.p.t_es else 0.0
        r = np.hypot(c.h[:, 0] - self.aorta_xy[0], c.h[:, 1] - self.aorta_xy[1]) / AORTA_RADIUS
        v = lumen * v_t * np.clip(1.0 - r**2, 0.0, 1.0) * 1.5
        signal = self._static(c, "cine")
        noise = rng.normal(0.0, 0.03 * venc, size=v.shape) / np.maximum(signal, 0.05)
        v = np.where(signal < 0.02, rng.uniform(-venc, venc, size=v.shape), v + np.clip(noise, -venc, venc))
        return np.clip(v, -venc, venc).reshape(c.shape)

    # --- rendering ------------------------------------------------------------------
    def _cache_for(self, plane: Plane) -> _PlaneCache:
        key = (plane.origin.tobytes(), plane.row.tobytes(), plane.col.tobytes(), plane.spacing, plane.shape)
        c = self._cache.get(key)
        if c is None:
            if len(self._cache) > 64:
                self._cache.clear()
            c = self._cache[key] = _PlaneCache(self, plane)
        return c

    def _static(self, c: _PlaneCache, seq: str) -> np.ndarray:
        if seq in c.static:
            return c.static[seq]
        s, px = self.signal[seq], c.px
        P = c.pts
        img = np.zeros(len(P))

        def paint(d, value):
            nonlocal img
            m = _soft(d, px)
            img += m * (value - img)

        # body: axial ellipse (infinite along z), subcutaneous fat rim, lungs, spine, aortas, liver
        # (the patient's own chest: scaled by body_scale and moved by body_shift around the heart)
        k, fat = self.p.body_scale, self.p.fat_mm
        X, Y, Z = P[:, 0] - self.p.body_shift[0], P[:, 1] - self.p.body_shift[1], P[:, 2]
        body = _ellipsoid_d(X, Y - 10.0 * k, 0.0, 160.0 * k, 112.0 * k, 1e9)
        paint(body, s["fat"])
        paint(body + fat, s["tissue"])
        paint(_ellipsoid_d(X + 50.0 * k, Y - 10.0 * k, Z + 110.0, 110.0 * k, 90.0 * k, 80.0), s["liver"])
        for cx in (-85.0, 95.0):
            paint(_ellipsoid_d(X - cx * k, Y - 25.0 * k, Z - 40.0, 58.0 * k, 72.0 * k, 125.0), s["lung"])
        paint(np.hypot(X, Y - 85.0 * k) - 18.0, s["bone"])
        paint(np.hypot(X - 20.0 * k, Y - 60.0 * k) - 11.0, s["blood"])
        # heart, static parts (heart frame)
        x, y, z = c.h[:, 0], c.h[:, 1], c.h[:, 2]
        e = self.p.effusion_mm
        if e > 0:
            re, le = self.R0 + self.p.wall_mm + e, self.L0 + self.apex_wall + e
            paint(np.maximum(_ellipsoid_d(x, y, z, re, re, le), z), s["fluid"])
            a, b, l = self.rv_axes
            paint(np.maximum(_ellipsoid_d(x - self.rv_centre[0], y - self.rv_centre[1], z, a + e, b + e, l + e), z), s["fluid"])
        for (cx, cy, cz, r) in (self.la, self.ra):
            paint(_ellipsoid_d(x - cx, y - cy, z - cz, r + 2.0, r + 2.0, r + 2.0), s["myo"])
            paint(_ellipsoid_d(x - cx, y - cy, z - cz, r, r, r), s["blood"])
        tube = self._aorta_d(x, y, z)
        paint(tube - 2.0, s["myo"])
        paint(tube, s["blood"])
        c.static[seq] = img
        return img

    def render(self, plane: Plane, seq: str, t: float = 0.0, masks: bool = False):
        """Noise-free image of `plane` at cycle fraction t; masks: lv_cavity, lv_myo, scar,
        remote (myocardium without scar) as soft fractions in [0, 1]."""
        c = self._cache_for(plane)
        s, px, p = self.signal[seq], c.px, self.p
        img = self._static(c, seq).copy()
        sh = contraction(t, p.t_es) if seq == "cine" else 0.0
        x, y, z, rho = c.x, c.y, c.z, c.rho
        sub = img[c.near]

        # RV: outer wall then cavity, shrinking over the cycle
        k = 1.0 - sh * p.rv_contraction
        a, b, l = self.rv_axes
        dx, dy = x - self.rv_centre[0], y - self.rv_centre[1]
        for grow, value in ((0.0, s["myo"]), (-self.rv_wall, s["blood"])):
            d = np.maximum(_ellipsoid_d(dx, dy, z, a * k + grow, b * k + grow, l * (1 - 0.5 * (1 - k)) + grow), z)
            sub += _soft(d, px) * (value - sub)
        # LV: epicardium, then cavity
        r_endo = self.R0 * (1.0 - sh * self.cr * (1.0 - c.terr * (1.0 - p.wma)))
        l_endo = self.L0 * (1.0 - sh * self.cr * LONG_RATIO)
        r_epi = np.sqrt(r_endo**2 + (self.R0 + c.wall) ** 2 - self.R0**2)
        l_epi = l_endo + self.apex_wall * (1.0 + 0.3 * sh)
        f_endo = (rho / r_endo) ** 2 + (z / l_endo) ** 2
        f_epi = (rho / r_epi) ** 2 + (z / l_epi) ** 2
        d_endo = np.maximum((f_endo - 1) / (2 * np.sqrt(rho**2 / r_endo**4 + z**2 / l_endo**4) + 1e-6), z)
        d_epi = np.maximum((f_epi - 1) / (2 * np.sqrt(rho**2 / r_epi**4 + z**2 / l_epi**4) + 1e-6), z)
        m_epi, m_endo = _soft(d_epi, px), _soft(d_endo, px)
        myo = s["myo"]
        scar = None
        if seq in ("lge", "t1"):
            q_endo, q_epi = np.sqrt(f_endo), np.sqrt(f_epi)
            tau = np.clip((q_endo - 1.0) / np.maximum(q_endo - q_epi, 1e-6), 0.0, 1.0)
            scar = self.scar_field(tau, c.phi, c.zn, c.terr)
            myo = s["myo"] + (s["scar"] - s["myo"]) * scar
        sub += m_epi * (myo - sub)
        sub += m_endo * (s["blood"] - sub)
        img[c.near] = sub
        if seq == "cine" and p.mr:
            img *= 1.0 - 0.8 * mr_flow(t, p.t_es) * self.mr_jet(c)
        img = img.reshape(c.shape)
        if not masks:
            return img, None
        out = {}
        wall = m_epi * (1.0 - m_endo)
        if scar is None:
            q_endo, q_epi = np.sqrt(f_endo), np.sqrt(f_epi)
            tau = np.clip((q_endo - 1.0) / np.maximum(q_endo - q_epi, 1e-6), 0.0, 1.0)
            scar = self.scar_field(tau, c.phi, c.zn, c.terr)
        for name, vals in (("lv_cavity", m_endo), ("lv_myo", wall), ("scar", wall * scar), ("remote", wall * (1.0 - np.clip(scar * 4, 0, 1)))):
            full = np.zeros(c.shape[0] * c.shape[1])
            full[c.near] = vals
            out[name] = full.reshape(c.shape)
        return img, out

    def noisy(self, img: np.ndarray, plane: Plane, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
        """Bias field and Rician noise (sigma = patient noise x scale, in blood-pool units)."""
        c = self._cache_for(plane)
        sig = self.p.noise * scale
        a = img * c.bias.reshape(c.shape)
        n = rng.normal(0.0, sig, size=(2,) + a.shape)
        return np.sqrt((a + n[0]) ** 2 + n[1] ** 2)
