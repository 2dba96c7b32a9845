"""The network: ``arch`` (the pure VGG16/VGG19 layer table), ``vgg`` (features forward with taps and
the backward to the input) and ``weights/`` (readers, verification, cache and fetching).
"""
