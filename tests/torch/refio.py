"""refio: writes the reference files the C tests read (tests/ref/<name>.bin).

A file is a sequence of records: int32 ndim, int64 sizes[ndim], float32 data (row-major).
Run the generators with Debian's torch: /usr/bin/python3 tests/torch/gen_<group>.py.
Tensors are written in autonad's layout: convert NCHW -> NHWC (x.permute(0, 2, 3, 1)) and
conv weights OIHW -> OHWI (w.permute(0, 2, 3, 1)) before writing.
"""
import os
import struct

import numpy as np

REF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref")


def write(name, tensors):
    """Writes tensors (torch tensors or numpy arrays) to tests/ref/<name>.bin."""
    os.makedirs(REF_DIR, exist_ok=True)
    with open(os.path.join(REF_DIR, name + ".bin"), "wb") as f:
        for t in tensors:
            a = t.detach().contiguous().numpy() if hasattr(t, "detach") else np.asarray(t)
            a = np.ascontiguousarray(a, dtype=np.float32)
            f.write(struct.pack("<i", a.ndim))
            f.write(struct.pack("<%dq" % a.ndim, *a.shape))
            f.write(a.tobytes())
