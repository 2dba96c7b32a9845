"""Video style transfer without flicker (Ruder, Dosovitskiy and Brox 2016): ``stylize_video``.

``io`` decodes and encodes (ffmpeg via imageio-ffmpeg, frame rate and sound kept), ``flow`` computes
OpenCV optical flow, warps and the forward-backward consistency mask (and Lai et al.'s warping error),
``work`` keeps finished frames resumable, ``run`` is the sequential driver on transfer's code path;
the temporal loss itself is ``minivgg.style.temporal``. Needs the ``video`` extra.
"""

from .run import DEFAULT_TEMPORAL_WEIGHT, VideoOptions, run_video, stylize_video

__all__ = ["DEFAULT_TEMPORAL_WEIGHT", "VideoOptions", "run_video", "stylize_video"]
