"""Scanner geometry of the phantom: the heart's frame in patient space and the image planes.

Patient coordinates are DICOM LPS millimetres (x to the patient's left, y posterior,
z superior).  The heart frame has its origin at the centre of the LV base plane:

- ``u``  the LV long axis, apex -> base (base is right, posterior and superior of the apex);
- ``x``  toward the septum and the RV (phi = 0 deg);
- ``y = u x x``  anterior (phi = 90 deg); lateral is 180 deg, inferior 270 deg.

A `Plane` is one image: ``origin`` is the centre of the first pixel (ImagePositionPatient),
``row`` the direction of increasing column index and ``col`` that of increasing row index
(ImageOrientationPatient = row + col), ``spacing`` = (between rows, between columns) mm
(PixelSpacing), ``normal = row x col``.  Short-axis planes are perpendicular to ``u`` and
step along it; long-axis planes contain the long axis at an angle phi around it (4ch 0 deg,
3ch 45 deg, 2ch 90 deg), with a small per-patient tilt.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

TYPICAL_APEX = np.array([0.6, -0.55, -0.58])  # LPS: apex left, anterior, inferior
TYPICAL_SEPTUM = np.array([-1.0, -0.5, 0.0])  # RV lies right and anterior of the LV
LAX_PHI = {"4ch": 0.0, "3ch": 45.0, "2ch": 90.0}


# Same seed, same bytes: no BLAS here (matmul, dot, norm), whose rounding may change with
# thread count or memory alignment between processes; products are spelled out instead.
def dot3(a, b) -> float:
    return float(a[0] * b[0] + a[1] * b[1] + a[2] * b[2])


def matvec(m, v) -> np.ndarray:
    return np.array([dot3(m[i], v) for i in range(3)])


def apply(points, m) -> np.ndarray:
    """points [..., 3] times the 3x3 matrix m (points @ m), elementwise."""
    p = np.asarray(points, dtype=np.float64)
    return p[..., 0:1] * m[0] + p[..., 1:2] * m[1] + p[..., 2:3] * m[2]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.sqrt(dot3(v, v))


def rotation(axis, angle_deg: float) -> np.ndarray:
    """Rodrigues rotation matrix about a unit axis (K^2 = k k^T - I)."""
    k = _unit(axis)
    a = np.deg2rad(angle_deg)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * (np.outer(k, k) - np.eye(3))


@dataclass(frozen=True)
class HeartFrame:
    origin: np.ndarray  # LPS mm, centre of the LV base plane
    x: np.ndarray
    y: np.ndarray
    u: np.ndarray

    @classmethod
    def from_angles(cls, origin, yaw: float, pitch: float, roll: float) -> "HeartFrame":
        """Typical orientation turned by yaw (about patient z), pitch (about patient x) and
        roll (about the long axis), all in degrees."""
        turn = apply(rotation([0, 0, 1], yaw).T, rotation([1, 0, 0], pitch).T).T  # pitch . yaw
        u = matvec(turn, -_unit(TYPICAL_APEX))
        s = matvec(turn, TYPICAL_SEPTUM)
        x = _unit(s - dot3(s, u) * u)
        x = matvec(rotation(u, roll), x)
        y = np.cross(u, x)
        return cls(np.asarray(origin, dtype=np.float64), x, y, u)

    @property
    def matrix(self) -> np.ndarray:
        """Columns x, y, u: heart -> patient directions."""
        return np.stack([self.x, self.y, self.u], axis=1)

    def to_patient(self, h) -> np.ndarray:
        return self.origin + apply(h, self.matrix.T)

    def to_heart(self, p) -> np.ndarray:
        return apply(np.asarray(p, dtype=np.float64) - self.origin, self.matrix)

    def direction(self, phi_deg: float) -> np.ndarray:
        a = np.deg2rad(phi_deg)
        return np.cos(a) * self.x + np.sin(a) * self.y


@dataclass(frozen=True)
class Plane:
    origin: np.ndarray  # centre of pixel (0, 0), LPS mm
    row: np.ndarray  # unit, along increasing column index
    col: np.ndarray  # unit, along increasing row index
    spacing: tuple[float, float]  # (between rows, between columns)
    shape: tuple[int, int]  # (rows, columns)

    @cached_property
    def normal(self) -> np.ndarray:
        (a, b, c), (d, e, f) = self.row, self.col
        return np.array([b * f - c * e, c * d - a * f, a * e - b * d])

    @property
    def orientation(self) -> list[float]:
        return [float(v) for v in np.concatenate([self.row, self.col])]

    def points(self) -> np.ndarray:
        """Patient coordinates of every pixel centre, [rows, cols, 3]."""
        i = np.arange(self.shape[0])[:, None, None] * self.spacing[0]
        j = np.arange(self.shape[1])[None, :, None] * self.spacing[1]
        return self.origin + j * self.row + i * self.col

    def project(self, p) -> tuple[float, float]:
        """(row index, column index) of a patient point's projection on the plane."""
        d = np.asarray(p, dtype=np.float64) - self.origin
        return dot3(d, self.col) / self.spacing[0], dot3(d, self.row) / self.spacing[1]


def centred_plane(centre, row, col, fov_mm: float, size: int) -> Plane:
    """A square plane of `size` pixels covering `fov_mm`, centred on `centre`."""
    px = fov_mm / size
    row, col = _unit(row), _unit(col)
    half = (size - 1) / 2 * px
    origin = np.asarray(centre, dtype=np.float64) - half * row - half * col
    return Plane(origin, row, col, (px, px), (size, size))


def sax_planes(frame: HeartFrame, levels, centre_offset, fov_mm, size, inplane_deg=0.0) -> list[Plane]:
    """Short-axis stack at heart-frame heights `levels` (mm along u, base first).
    Displayed with the RV on the image left and anterior up, turned by `inplane_deg`."""
    turn = rotation(frame.u, inplane_deg)
    row, col = matvec(turn, -frame.x), matvec(turn, -frame.y)  # row x col = u
    return [centred_plane(frame.to_patient([centre_offset, 0.0, z]), row, col, fov_mm, size) for z in levels]


def lax_plane(frame: HeartFrame, view: str, centre_z, fov_mm, size, tilt_deg=0.0) -> Plane:
    """Long-axis plane containing the LV axis at angle LAX_PHI[view], apex up, tilted by
    `tilt_deg` about the image's vertical axis."""
    w = frame.direction(LAX_PHI[view])
    col = frame.u  # rows run apex -> base: apex at the top of the image
    row = matvec(rotation(col, tilt_deg), -w)
    return centred_plane(frame.to_patient([0.0, 0.0, centre_z]), row, col, fov_mm, size)


def localizer_planes(centre, fov_mm, size) -> list[Plane]:
    """Axial, coronal and sagittal planes through `centre` (a 3-plane localizer)."""
    x, y, z = np.eye(3)
    return [
        centred_plane(centre, x, y, fov_mm, size),   # axial
        centred_plane(centre, x, -z, fov_mm, size),  # coronal
        centred_plane(centre, y, -z, fov_mm, size),  # sagittal
    ]
