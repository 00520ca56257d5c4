"""slicer.split.transform: the calibrated KLT of a cut tensor.

Checked against an independent reference (SVD of the centred data matrix), on synthetic data
with a known covariance, through the codec (coding the coefficients must beat coding the
tensor on correlated data at the same byte budget), and on bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import slicer
from slicer.split.transform import CutTransform, default_axis


def correlated(rng: np.random.Generator, rows: int, channels: int, rank: int = 4) -> np.ndarray:
    """Rows with most of their power in ``rank`` directions, a mean, and a little noise."""
    mix = rng.standard_normal((rank, channels)) * np.geomspace(8, 1, rank)[:, None]
    mean = rng.standard_normal(channels) * 3
    return (rng.standard_normal((rows, rank)) @ mix + mean
            + 0.1 * rng.standard_normal((rows, channels)))  # fmt: skip


def reference_pca(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, component variances (descending) and basis from an SVD of the centred data."""
    mean = rows.mean(axis=0)
    _, s, vt = np.linalg.svd(rows - mean, full_matrices=True)
    var = np.zeros(rows.shape[1])
    var[: s.size] = s**2 / (rows.shape[0] - 1)
    return mean, var, vt.T


def test_fit_matches_svd_reference() -> None:
    rng = np.random.default_rng(0)
    x = correlated(rng, 3000, 37)
    t = CutTransform.fit([x])
    mean, var, basis = reference_pca(x)
    np.testing.assert_allclose(t.mean, mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(t.variance, var, rtol=1e-7, atol=1e-9 * var[0])
    # Columns equal up to sign for well-separated components (the first four here).
    for k in range(4):
        dot = abs(float(t.basis[:, k].astype(np.float64) @ basis[:, k]))
        assert dot > 1 - 1e-6, (k, dot)
    # The sign rule: each column's largest-magnitude entry is positive.
    pivot = np.argmax(np.abs(t.basis), axis=0)
    assert (t.basis[pivot, np.arange(37)] > 0).all()
    assert t.count == 3000 and t.axis == 1 and t.channels == 37


def test_streaming_fit_equals_one_batch_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    x = correlated(rng, 1000, 19)
    whole = CutTransform.fit([x])
    parts = CutTransform.fit([x[:1], x[1:400], x[400:]])
    np.testing.assert_allclose(parts.mean, whole.mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(parts.variance, whole.variance, rtol=1e-6)
    np.testing.assert_allclose(parts.basis, whole.basis, atol=2e-5)
    assert CutTransform.fit([x]).fingerprint() == whole.fingerprint()


def test_known_covariance_is_recovered() -> None:
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    lam = np.array([16.0, 9, 4, 2, 1, 0.5, 0.25, 0.1])
    x = (rng.standard_normal((200_000, 8)) * np.sqrt(lam)) @ q.T + 5
    t = CutTransform.fit([x])
    np.testing.assert_allclose(t.variance, lam, rtol=0.02)
    np.testing.assert_allclose(t.mean, 5, atol=0.03)
    # The fitted components are the true ones (up to sign).
    dots = np.abs(np.diag(t.basis.astype(np.float64).T @ q))
    assert (dots > 0.99).all(), dots
    assert t.coding_gain_bits() == pytest.approx(
        0.5 * np.log2(lam.mean() / np.exp(np.log(lam).mean())), rel=0.02
    )


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((3, 50, 24), None), ((2, 24, 7, 5), None), ((24,), None), ((5, 24, 3), 1), ((24, 9), 0)],
)
def test_forward_inverse_round_trip_and_axis(shape: tuple[int, ...], axis: int | None) -> None:
    rng = np.random.default_rng(3)
    ax = default_axis(len(shape)) if axis is None else axis
    rows = correlated(rng, 500, 24)
    t = CutTransform.fit([np.moveaxis(rows.reshape(500, 24), -1, 0)], axis=0)
    t = CutTransform(t.mean, t.basis, t.variance, axis=ax)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    y = t.forward(x)
    assert y.shape == x.shape and y.dtype == np.float32 and y.flags.c_contiguous
    back = t.inverse(y)
    np.testing.assert_allclose(back, x, rtol=0, atol=1e-5 * float(np.abs(x).max() + 3))
    # forward really is (x − mean) · basis along the axis.
    moved = np.moveaxis(x.astype(np.float64), ax, -1)
    expect = np.moveaxis((moved - t.mean) @ t.basis.astype(np.float64), -1, ax)
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-4)
    # Orthonormal: the squared error of coefficients is the squared error after inverse.
    noise = rng.standard_normal(shape).astype(np.float32) * 0.01
    err = t.inverse(y + noise) - back
    assert float(np.sum(err.astype(np.float64) ** 2)) == pytest.approx(
        float(np.sum(noise.astype(np.float64) ** 2)), rel=1e-3
    )


@settings(max_examples=40, deadline=None)
@given(
    channels=st.integers(1, 12),
    rows=st.integers(2, 60),
    lead=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_round_trip_property(channels: int, rows: int, lead: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((lead, rows, channels)) * rng.uniform(0.1, 10, channels)).astype(
        np.float32
    )
    t = CutTransform.fit([x])
    gram = t.basis.astype(np.float64).T @ t.basis.astype(np.float64)
    np.testing.assert_allclose(gram, np.eye(channels), atol=1e-5)
    assert (np.diff(t.variance) <= 1e-9 * max(t.variance[0], 1)).all()  # sorted, descending
    np.testing.assert_allclose(t.inverse(t.forward(x)), x, atol=1e-4 * (np.abs(x).max() + 1))


def test_storage_round_trip(tmp_path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(4)
    t = CutTransform.fit([correlated(rng, 400, 16)])
    again = CutTransform.from_bytes(t.to_bytes())
    assert again.fingerprint() == t.fingerprint()
    np.testing.assert_array_equal(again.basis, t.basis)
    np.testing.assert_array_equal(again.variance, t.variance)
    t.save(tmp_path / "t.npz")
    assert CutTransform.load(tmp_path / "t.npz").fingerprint() == t.fingerprint()


def test_coding_coefficients_beats_coding_the_tensor() -> None:
    """At the same byte budget the codec's error on correlated rows is far lower through the
    transform (fit on other rows of the same source)."""
    rows = correlated(np.random.default_rng(5), 4512, 64, rank=6)
    calib, x = rows[:4000], rows[4000:].astype(np.float32)
    t = CutTransform.fit([calib])
    budget = int(2.0 * x.size / 8)
    plain = slicer.decode(slicer.encode(x, mode="auto", max_bytes=budget))
    coded = slicer.encode(t.forward(x), mode="auto", max_bytes=budget)
    assert len(coded) <= budget
    via = t.inverse(slicer.decode(coded))
    e_plain = np.linalg.norm(plain - x) / np.linalg.norm(x)
    e_via = np.linalg.norm(via - x) / np.linalg.norm(x)
    assert e_via < 0.5 * e_plain, (e_via, e_plain)


def test_bad_input() -> None:
    rng = np.random.default_rng(7)
    x = correlated(rng, 100, 8)
    t = CutTransform.fit([x])
    with pytest.raises(TypeError, match="floating-point"):
        CutTransform.fit([x.astype(np.int32)])
    with pytest.raises(ValueError, match="at least one sample"):
        CutTransform.fit([])
    with pytest.raises(ValueError, match="at least 2 feature vectors"):
        CutTransform.fit([x[:1]])
    with pytest.raises(ValueError, match="first sample 8"):
        CutTransform.fit([x, x[:, :5]])
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        CutTransform.fit([bad])
    with pytest.raises(ValueError, match="features along axis"):
        t.forward(np.zeros((3, 9), np.float32))
    with pytest.raises(TypeError, match="floating-point"):
        t.inverse(np.zeros((3, 8), np.int64))
    with pytest.raises(ValueError, match="orthonormal"):
        CutTransform(t.mean, t.basis * 2, t.variance, axis=-1)
    with pytest.raises(ValueError, match=r"basis must be \(8, 8\)"):
        CutTransform(t.mean, t.basis[:, :7], t.variance, axis=-1)
    with pytest.raises(ValueError, match="not a SLICER cut transform"):
        CutTransform.from_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="out of range"):
        CutTransform(t.mean, t.basis, t.variance, axis=3).forward(np.zeros((2, 8), np.float32))


def test_weighted_fit_codes_the_weighted_error() -> None:
    """With a task matrix F the coefficients' plain squared error is the weighted error
    eᵀ(F + ridge)e of the tensor, and their variances are the KLT of the whitened rows."""
    rng = np.random.default_rng(8)
    x = correlated(rng, 3000, 12)
    a = rng.standard_normal((12, 12))
    f = a @ a.T / 12 + np.diag(rng.uniform(0, 2, 12))
    t = CutTransform.fit([x], weights=f)
    ridge = 1e-3 * np.trace(f) / 12
    lower = np.linalg.cholesky(f + ridge * np.eye(12))
    # Reference: KLT of the whitened rows z = (x − mean)·L.
    _, var, _ = reference_pca((x - x.mean(0)) @ lower)
    np.testing.assert_allclose(t.variance, var, rtol=1e-6, atol=1e-9 * var[0])
    y = t.forward(x.astype(np.float32))
    np.testing.assert_allclose(t.inverse(y), x, atol=1e-4 * np.abs(x).max())
    noise = rng.standard_normal(y.shape) * 0.01
    e = t.inverse(y + noise).astype(np.float64) - t.inverse(y)
    weighted = np.einsum("ij,jk,ik->", e, f + ridge * np.eye(12), e)
    assert weighted == pytest.approx(float(np.sum(noise**2)), rel=2e-3)
    again = CutTransform.from_bytes(t.to_bytes())
    np.testing.assert_array_equal(again.inverse_basis, t.inverse_basis)
    # A diagonal is the matrix with that diagonal.
    d = rng.uniform(0.1, 3, 12)
    np.testing.assert_allclose(
        CutTransform.fit([x], weights=d).variance,
        CutTransform.fit([x], weights=np.diag(d)).variance,
    )
    with pytest.raises(ValueError, match="positive trace"):
        CutTransform.fit([x], weights=np.zeros(12))
    with pytest.raises(ValueError, match=r"\(12,\) vector or a \(12, 12\) matrix"):
        CutTransform.fit([x], weights=np.ones(5))
    with pytest.raises(ValueError, match="semi-definite"):
        CutTransform.fit([x], weights=np.diag([5.0] * 11 + [-3.0]))


def test_hostile_transform_files_are_refused_before_reading() -> None:
    """Array headers are checked before any array is read: a tiny compressed file that claims a
    huge basis, a pickled object, an unexpected member or a wrong rank is a ValueError."""
    import io
    import zipfile

    t = CutTransform.fit([correlated(np.random.default_rng(9), 200, 6)])

    def archive(members: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, payload in members.items():
                z.writestr(name, payload)
        return buf.getvalue()

    def npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
        """An .npy header (magic included) that claims `shape`, with no data after it."""
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buf, {"descr": dtype, "fortran_order": False, "shape": shape}
        )
        return buf.getvalue()

    stored = zipfile.ZipFile(io.BytesIO(t.to_bytes()))
    members = {n: stored.read(n) for n in stored.namelist()}
    names = ("mean", "basis", "inverse_basis", "variance", "axis", "count")
    assert set(members) == {f"{k}.npy" for k in names}
    # A basis claiming 10^6 x 10^6 float32 (4 TB) in a few hundred bytes.
    huge = {**members, "basis.npy": npy_header((10**6, 10**6))}
    with pytest.raises(ValueError, match="at most 32768"):
        CutTransform.from_bytes(archive(huge))
    obj = io.BytesIO()
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a SLICER cut transform"):
        CutTransform.from_bytes(archive({**members, "mean.npy": obj.getvalue()}))
    with pytest.raises(ValueError, match="unexpected member"):
        CutTransform.from_bytes(archive({**members, "extra.npy": members["mean.npy"]}))
    flat = io.BytesIO()
    np.save(flat, np.zeros(36, np.float32))
    with pytest.raises(ValueError, match="1-d float32"):
        CutTransform.from_bytes(archive({**members, "basis.npy": flat.getvalue()}))
    assert CutTransform.from_bytes(archive(members)).fingerprint() == t.fingerprint()


def test_transform_is_immutable_and_its_fingerprint_cached() -> None:
    x = correlated(np.random.default_rng(10), 300, 8)
    t = CutTransform.fit([x])
    fp = t.fingerprint()
    with pytest.raises(ValueError, match="read-only"):
        t.basis[0, 0] = 1.0
    assert t.fingerprint() is fp  # computed once
    mine = np.array(t.mean)  # a caller's array stays writable: the transform copies it
    CutTransform(mine, t.basis, t.variance, axis=-1)
    mine[0] = 1.0
