"""Writes a synthetic MRI-like case for timing: a float32 image and a uint8 label map, NIfTI-1.

    python3 bench/make_volume.py IMAGE.nii.gz LABEL.nii.gz NX NY NZ SPACING_MM SEED

SPACING_MM is one value (isotropic) or three, comma-separated (x,y,z).

The image is smooth noise with a brighter ellipsoid (label 1) and a darker one (label 2) whose
centres and radii the seed picks; every axial slice of the middle third holds label 1.
"""
import gzip
import struct
import sys

import numpy as np


def header(shape, spacing, datatype, bitpix):
    sx, sy, sz = spacing
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, 3, *shape, 1, 1, 1, 1)
    struct.pack_into("<hh", h, 70, datatype, bitpix)
    struct.pack_into("<8f", h, 76, 1.0, sx, sy, sz, 0, 0, 0, 0)
    struct.pack_into("<f", h, 108, 352.0)          # vox_offset
    struct.pack_into("<ff", h, 112, 1.0, 0.0)      # scl_slope, scl_inter
    struct.pack_into("<B", h, 123, 10)             # xyzt_units: mm, s
    struct.pack_into("<hh", h, 252, 1, 1)          # qform_code, sform_code
    struct.pack_into("<12f", h, 280, sx, 0, 0, 0, 0, sy, 0, 0, 0, 0, sz, 0)
    h[344:348] = b"n+1\0"
    return bytes(h) + b"\0\0\0\0"


def write(path, array, spacing, datatype, bitpix):
    data = header(array.shape, spacing, datatype, bitpix) + np.asfortranarray(array).tobytes(order="F")
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(data)


def main():
    image_path, label_path = sys.argv[1], sys.argv[2]
    nx, ny, nz = (int(v) for v in sys.argv[3:6])
    values = [float(v) for v in sys.argv[6].split(",")]
    spacing, seed = (values * 3 if len(values) == 1 else values), int(sys.argv[7])
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    label = np.zeros((nx, ny, nz), np.uint8)
    for value, scale in ((1, 0.25), (2, 0.12)):
        c = rng.uniform(0.35, 0.65, 3) * (nx, ny, nz)
        r = rng.uniform(0.8, 1.2, 3) * scale * (nx, ny, nz)
        if value == 1:
            r[2] = nz / 3
        inside = ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1
        label[inside & (label == 0)] = value
    image = rng.normal(0, 1, (nx, ny, nz)).astype(np.float32)
    for axis in range(3):
        image = (image + np.roll(image, 1, axis) + np.roll(image, -1, axis)) / 3
    image = 100 + 20 * image + 60 * (label == 1) - 40 * (label == 2)
    write(image_path, image.astype(np.float32), spacing, 16, 32)
    write(label_path, label, spacing, 2, 8)


main()
