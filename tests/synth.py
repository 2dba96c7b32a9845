"""Synthetic test data shared by several test modules."""

import h5py
import numpy as np

from minivgg.network.arch import conv_layer_table


def write_keras_h5(path, arch, seed=0):
    """A synthetic weights file in the Keras legacy layout (tf.keras names, (H, W, in, out) kernels)."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        names = []
        for name, cin, cout in conv_layer_table(arch):
            g = f.create_group(name)
            k = (rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2 / (9 * cin))).astype(np.float32)
            g.create_dataset(f"{name}/kernel:0", data=k)
            g.create_dataset(
                f"{name}/bias:0", data=(rng.standard_normal(cout) * 0.01).astype(np.float32)
            )
            g.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            names.append(name.encode())
        f.attrs["layer_names"] = names
    return path
