"""ckptio: reads and writes autonad checkpoints (lua/autonad/checkpoint.lua) with numpy.

Layout: "NADCKPT1", uint64 header length (little-endian), a JSON header
{"meta": ..., "tensors": [{"name", "shape", "offset"}]} with the tensors sorted by name,
then the float32 data (little-endian, contiguous, offsets in bytes from the data start).
Used by gen_supernet.py (tests/ref/supernet_case*.ckpt) and by anything in Python that
exchanges weights with autonad. Run with Debian's /usr/bin/python3.
"""
import json
import os
import struct

import numpy as np

MAGIC = b"NADCKPT1"


def _as_f32(t):
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(t), dtype="<f4")


def write(path, tensors, meta=None):
    """Writes tensors (a dict name -> numpy array or torch tensor) and meta (JSON data) to
    path atomically (temporary file, fsync, rename), like checkpoint.save."""
    names = sorted(tensors)  # byte order, as Lua's table.sort on ASCII names
    arrays, entries, offset = [], [], 0
    for name in names:
        a = _as_f32(tensors[name])
        entries.append({"name": name, "shape": list(a.shape), "offset": offset})
        arrays.append(a)
        offset += a.size * 4
    header = json.dumps({"meta": meta or {}, "tensors": entries}, sort_keys=True,
                        separators=(",", ":")).encode("utf-8")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        for a in arrays:
            f.write(a.tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read(path):
    """Reads a checkpoint: returns (dict name -> float32 numpy array, meta)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 16 or data[:8] != MAGIC:
        raise ValueError("checkpoint %s: not an autonad checkpoint (bad magic)" % path)
    (n,) = struct.unpack("<Q", data[8:16])
    if 16 + n > len(data):
        raise ValueError("checkpoint %s: truncated header" % path)
    header = json.loads(data[16:16 + n].decode("utf-8"))
    base = 16 + n
    out = {}
    for e in header["tensors"]:
        shape = tuple(e["shape"])
        count = int(np.prod(shape)) if shape else 1
        start = base + e["offset"]
        if start + 4 * count > len(data):
            raise ValueError("checkpoint %s: truncated data for %s" % (path, e["name"]))
        out[e["name"]] = np.frombuffer(data, dtype="<f4", count=count,
                                       offset=start).reshape(shape).copy()
    return out, header["meta"]
