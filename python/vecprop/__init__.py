"""vecprop: batched forward propagation of dense layers, from NumPy.

Load a model (safetensors in ``torch.nn.Linear`` layout, the file the ``vecprop`` CLI reads)
or build one from arrays, then call it on a 2-D batch, one example per row::

    >>> import numpy as np, vecprop
    >>> W = np.array([[1, -3, 5], [-2, 4, -6]], np.float32)   # (inputs, units)
    >>> b = np.array([-1, 1, 2], np.float32)
    >>> model = vecprop.from_arrays([(W, b)], ["sigmoid"])
    >>> model(np.array([[200, 17]], np.float32)).round()
    array([[1., 0., 1.]], dtype=float32)

Every error the library reports raises :class:`VecpropError`, a subclass of ``ValueError``.
"""

from ._vecprop import Model, VecpropError, __version__, devices, from_arrays, gpus, load

__all__ = ["Model", "VecpropError", "__version__", "devices", "from_arrays", "gpus", "load"]
