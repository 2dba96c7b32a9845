"""Dense optical flow between frames (OpenCV: DIS or Farneback), bilinear warping, Ruder et al.'s
forward-backward consistency mask, and Lai et al.'s warping error.

Convention: ``optical_flow(a, b)[y, x] = (dx, dy)`` with ``a(y, x) ≈ b(y + dy, x + dx)``, and
``warp(img, flow)(p) = img(p + flow(p))``. So with the *backward* flow of frame t,
``optical_flow(frame_t, frame_{t-1})``, ``warp(stylised_{t-1}, backward)`` lies on frame t.
OpenCV is imported inside the functions: ``import minivgg.video`` does not need it.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError

FLOW_METHODS = ("dis", "farneback")
_INSTALL = "pip install 'minivgg[video]'"


def require_cv2():
    """The ``cv2`` module, or a UserError saying how to install it."""
    try:
        import cv2
    except ImportError:
        raise UserError(
            f"minivgg video computes optical flow with OpenCV, which is not installed here; {_INSTALL}"
        ) from None
    return cv2


def _gray(img, cv2):
    a = np.asarray(img)
    if a.ndim == 3:
        a = cv2.cvtColor(np.ascontiguousarray(a, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(a, dtype=np.uint8)


def optical_flow(a, b, method: str = "dis") -> np.ndarray:
    """Dense flow from frame ``a`` to frame ``b``: ``a(y, x) ≈ b(y + dy, x + dx)``.

    Parameters
    ----------
    a, b : ndarray, shape (H, W, 3) uint8 RGB (or (H, W) grey)
        Two frames of the same size.
    method : {"dis", "farneback"}
        OpenCV's DIS (preset MEDIUM) or Farneback's polynomial expansion.

    Returns
    -------
    ndarray, shape (H, W, 2), float32
        ``(dx, dy)`` in pixels at every pixel of ``a``.

    Raises
    ------
    ValueError
        For an unknown method or frames of different sizes.

    Examples
    --------
    >>> a = np.zeros((16, 16, 3), np.uint8)
    >>> optical_flow(a, a).shape
    (16, 16, 2)
    """
    cv2 = require_cv2()
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}: expected {', '.join(FLOW_METHODS)}")
    ga, gb = _gray(a, cv2), _gray(b, cv2)
    if ga.shape != gb.shape:
        raise ValueError(f"frames of different sizes: {ga.shape} and {gb.shape}")
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(ga, gb, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 5, 15, 3, 5, 1.2, 0)
    return np.ascontiguousarray(flow, dtype=np.float32)


def _sample_points(flow):
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx + flow[..., 0], gy + flow[..., 1]


def warp(img, flow) -> np.ndarray:
    """``img`` sampled bilinearly at ``p + flow(p)``: the previous frame brought onto this one.

    Parameters
    ----------
    img : ndarray, shape (H, W) or (H, W, C), float or uint8
        The image to warp (e.g. the previous stylised frame).
    flow : ndarray, shape (H, W, 2)
        Per-pixel ``(dx, dy)``; samples outside the image repeat its border.

    Returns
    -------
    ndarray, shape of ``img``, float64 (float32 inputs stay float32)

    Examples
    --------
    >>> img = np.arange(12, dtype=np.float64).reshape(3, 4)
    >>> flow = np.zeros((3, 4, 2), np.float32); flow[..., 0] = 1  # one pixel to the right
    >>> warp(img, flow)[0].tolist()
    [1.0, 2.0, 3.0, 3.0]
    """
    cv2 = require_cv2()
    a = np.asarray(img)
    if np.shape(flow)[:2] != a.shape[:2]:
        raise ValueError(f"warp: image {a.shape[:2]} and flow {np.shape(flow)[:2]} differ in size")
    dtype = np.float32 if a.dtype == np.float32 else np.float64
    mx, my = _sample_points(np.asarray(flow, dtype=np.float32))
    out = cv2.remap(
        np.ascontiguousarray(a, dtype=np.float32),
        mx,
        my,
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape(a.shape).astype(dtype, copy=False)


def consistency_mask(forward, backward) -> np.ndarray:
    """Ruder et al.'s reliability mask of frame t from the flows between frames t-1 and t.

    With ``ŵ = backward`` (t → t-1) and ``w̃(p) = forward(p + ŵ(p))`` (the forward flow t-1 → t
    brought onto frame t), a pixel is 0 where ``|w̃ + ŵ|² > 0.01(|w̃|² + |ŵ|²) + 0.5``
    (disoccluded: the two flows disagree), where ``|∇û|² + |∇v̂|² > 0.01|ŵ|² + 0.002`` (a motion
    boundary of the backward flow ``ŵ = (û, v̂)``) or where ``p + ŵ(p)`` leaves the frame; 1 elsewhere.

    Parameters
    ----------
    forward : ndarray, shape (H, W, 2)
        ``optical_flow(frame_{t-1}, frame_t)``.
    backward : ndarray, shape (H, W, 2)
        ``optical_flow(frame_t, frame_{t-1})``.

    Returns
    -------
    ndarray, shape (H, W), float32 of 0 and 1

    Examples
    --------
    >>> still = np.zeros((8, 8, 2), np.float32)
    >>> float(consistency_mask(still, still).min())
    1.0
    """
    fwd = np.asarray(forward, dtype=np.float32)
    bwd = np.asarray(backward, dtype=np.float32)
    fwd_on_t = warp(fwd, bwd)
    s = fwd_on_t + bwd
    disoccluded = (s**2).sum(-1) > 0.01 * ((fwd_on_t**2).sum(-1) + (bwd**2).sum(-1)) + 0.5
    du_y, du_x = np.gradient(bwd[..., 0])
    dv_y, dv_x = np.gradient(bwd[..., 1])
    boundary = du_x**2 + du_y**2 + dv_x**2 + dv_y**2 > 0.01 * (bwd**2).sum(-1) + 0.002
    mx, my = _sample_points(bwd)
    h, w = bwd.shape[:2]
    outside = (mx < 0) | (mx > w - 1) | (my < 0) | (my > h - 1)
    return (~(disoccluded | boundary | outside)).astype(np.float32)


def flow_and_mask(previous, current, method: str = "dis"):
    """``(backward flow, reliability mask)`` of frame ``current`` from frame ``previous``: the work of
    one frame pair, independent of every other (a Dask task of ``minivgg video``).

    Parameters
    ----------
    previous, current : ndarray, shape (H, W, 3) uint8
        Consecutive input frames.
    method : {"dis", "farneback"}

    Returns
    -------
    backward : ndarray, shape (H, W, 2), float32
        ``optical_flow(current, previous)``: warps frame t-1 onto frame t.
    mask : ndarray, shape (H, W), float32
        ``consistency_mask(forward, backward)``.

    Examples
    --------
    >>> frame = np.zeros((16, 16, 3), np.uint8)
    >>> flow, mask = flow_and_mask(frame, frame)
    >>> flow.shape, mask.shape
    ((16, 16, 2), (16, 16))
    """
    backward = optical_flow(current, previous, method)
    forward = optical_flow(previous, current, method)
    return backward, consistency_mask(forward, backward)


def warping_error(frames, flows, masks) -> float:
    """Lai et al.'s warping error: frame t-1 warped onto frame t, the squared RGB distance (0..1
    units) averaged over the reliable pixels of each pair, then over the pairs.

    Parameters
    ----------
    frames : sequence of ndarray, shape (H, W, 3), uint8 or float 0..255
        The video to measure (T >= 2 frames).
    flows, masks : sequences of T-1 arrays
        ``flow_and_mask(input_{t-1}, input_t)`` for t = 1..T-1, computed on the *input* video.

    Returns
    -------
    float
        ``mean_t Σ_p c_t(p) |V_t(p) − warp(V_{t-1})(p)|² / Σ_p c_t(p)``.

    Examples
    --------
    >>> still = [np.full((4, 4, 3), 128, np.uint8)] * 3
    >>> warping_error(still, [np.zeros((4, 4, 2), np.float32)] * 2, [np.ones((4, 4))] * 2)
    0.0
    """
    if len(frames) < 2 or len(flows) != len(frames) - 1 or len(masks) != len(flows):
        raise ValueError("warping_error needs T >= 2 frames and T - 1 flows and masks")
    errors = []
    for t in range(1, len(frames)):
        # float32 on both sides, as the warp samples: a still frame differs from itself by exactly 0
        cur = np.asarray(frames[t], dtype=np.float32) / np.float32(255)
        prev = warp(np.asarray(frames[t - 1], dtype=np.float32) / np.float32(255), flows[t - 1])
        c = np.asarray(masks[t - 1], dtype=np.float64)
        d2 = ((cur - prev).astype(np.float64) ** 2).sum(-1)
        errors.append(float((c * d2).sum() / max(c.sum(), 1.0)))
    return float(np.mean(errors))
