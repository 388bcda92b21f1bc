"""3D Dice and HD95 (mm) of predicted label maps against references, on the native grid.

    python3 bench/volume_scores.py PREDICTION.nii[.gz] REFERENCE.nii[.gz] LABEL [nonzero]

With `nonzero`, every non-zero voxel of the prediction counts as the label (binary masks, as
`adapt` wrote them before label maps).

Reads NIfTI-1 (uint8, int16, float32 voxels) without nibabel; HD95 is the 95th percentile of
the symmetric surface distances, by exact Euclidean distance transforms with the voxel
spacing (scipy), the same definition MedMAML's VolumeScores uses. Prints `dice X` and
`hd95_mm Y`.
"""
import gzip
import struct
import sys

import numpy as np
from scipy import ndimage


def read(path):
    raw = open(path, "rb").read()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    endian = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    dims = struct.unpack(endian + "8h", raw[40:56])
    datatype = struct.unpack(endian + "h", raw[70:72])[0]
    pixdim = struct.unpack(endian + "8f", raw[76:108])
    offset = int(struct.unpack(endian + "f", raw[108:112])[0])
    dtype = {2: np.uint8, 4: np.int16, 16: np.float32, 512: np.uint16, 8: np.int32}[datatype]
    nx, ny, nz = dims[1], dims[2], dims[3]
    values = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder(endian), count=nx * ny * nz, offset=offset)
    return values.reshape(nz, ny, nx), (abs(pixdim[3]), abs(pixdim[2]), abs(pixdim[1]))


def surface(mask):
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1), border_value=0)


def main():
    prediction, spacing = read(sys.argv[1])
    reference, _ = read(sys.argv[2])
    label = float(sys.argv[3])
    binary = len(sys.argv) > 4 and sys.argv[4] == "nonzero"
    p = np.rint(prediction) != 0 if binary else np.rint(prediction) == label
    t = np.rint(reference) == label
    dice = 2 * (p & t).sum() / max(p.sum() + t.sum(), 1)
    print(f"dice {dice:.4f}")
    if p.any() and t.any():
        sp, st = surface(p), surface(t)
        to_t = ndimage.distance_transform_edt(~st, sampling=spacing)
        to_p = ndimage.distance_transform_edt(~sp, sampling=spacing)
        d = np.sort(np.concatenate([to_t[sp], to_p[st]]))
        print(f"hd95_mm {d[min(len(d) - 1, int(np.ceil(0.95 * (len(d) - 1))))]:.2f}")
    else:
        print("hd95_mm nan")


if __name__ == "__main__":
    main()
