"""The loss: ``losses`` (content, Gram/style, TV), ``presets`` (the six recipes), ``objective``
(``minivgg.Objective``), ``regions`` (masked styles), ``tiling`` (exact tiled evaluation) and
``memory`` (the peak-memory estimate).
"""
