"""Writes NIfTI test fixtures with nibabel (an independent NIfTI implementation):

  Tests/SharedTests/Fixtures/nifti/*.nii[.gz]   one 5x4x3 volume per case: several datatypes,
      plain and gzip, non-trivial scl_slope/scl_inter, big-endian, and a 4D file
  Tests/SharedTests/Fixtures/nifti/expected.safetensors   the scaled values nibabel reads
      (x fastest, as float32), and each file's voxel sizes
  Tests/SharedTests/Fixtures/decathlon/Task99_Mini       Medical Segmentation Decathlon layout
  Tests/SharedTests/Fixtures/decathlon/Dataset098_MiniV2 nnU-Net v2 layout
  Tests/SharedTests/Fixtures/pngtasks/<task>/{images,masks}/*.png  2D PNG folders, 8- and
      16-bit, written by a minimal PNG encoder below (independent of libpng)

Run from the repository root (nibabel and numpy from PyPI; only needed to regenerate):
    /tmp/ref/bin/pip install nibabel numpy safetensors torch
    /tmp/ref/bin/python Tests/Reference/make_nifti_fixtures.py
"""
import json
import os
import shutil

import nibabel as nib
import numpy as np
from safetensors.numpy import save_file

ROOT = os.path.join(os.path.dirname(__file__), "..", "SharedTests", "Fixtures")
rng = np.random.default_rng(20261127)


def write(img, path, big_endian=False):
    if big_endian:
        img = nib.Nifti1Image(img.get_fdata(caching="unchanged").astype(img.get_data_dtype()), img.affine,
                              img.header.as_byteswapped(">"))
    nib.save(img, path)


def cases():
    shape = (5, 4, 3)
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    base = rng.integers(-50, 200, size=shape)
    yield "u8.nii", nib.Nifti1Image(np.abs(base).clip(0, 255).astype(np.uint8), affine), False
    yield "i8.nii.gz", nib.Nifti1Image((base // 3).clip(-128, 127).astype(np.int8), affine), False
    yield "u16.nii", nib.Nifti1Image(np.abs(base * 90).astype(np.uint16), affine), False
    i16 = nib.Nifti1Image((base * 7).astype(np.int16), affine)
    i16.header.set_slope_inter(2.5, -10.0)
    yield "i16_scaled.nii.gz", i16, False
    yield "i32.nii", nib.Nifti1Image((base * 100000).astype(np.int32), affine), False
    yield "f32.nii.gz", nib.Nifti1Image(rng.normal(size=shape).astype(np.float32), affine), False
    yield "f64.nii", nib.Nifti1Image(rng.normal(size=shape) * 1e3, affine), False
    yield "i64.nii.gz", nib.Nifti1Image((base * 3).astype(np.int64), affine, dtype=np.int64), False
    be = nib.Nifti1Image((base * 5).astype(np.int16), affine)
    be.header.set_slope_inter(0.5, 1.0)
    yield "i16_bigendian.nii", be, True
    yield "f32_4d.nii.gz", nib.Nifti1Image(rng.normal(size=shape + (2,)).astype(np.float32), affine), False


def nifti():
    folder = os.path.join(ROOT, "nifti")
    os.makedirs(folder, exist_ok=True)
    expected = {}
    for name, img, big in cases():
        path = os.path.join(folder, name)
        write(img, path, big)
        back = nib.load(path)
        data = np.asarray(back.dataobj, dtype=np.float64)   # applies scl_slope / scl_inter
        if data.ndim == 4:
            data = data[..., 0]
        expected[name] = np.ascontiguousarray(data.transpose(2, 1, 0).astype(np.float32))  # x fastest
        expected[name + ".spacing"] = np.array(back.header.get_zooms()[:3], dtype=np.float32)
        assert (back.header.endianness == ">") == big, name
    save_file(expected, os.path.join(folder, "expected.safetensors"))


def blob_volume(shape, centre, radii):
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape[::-1]], indexing="ij")
    d = ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2
    return (d < 1).transpose(2, 1, 0)


def volumes(i):
    shape = (24, 24, 8)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[blob_volume(shape, (9 + i, 10, 3.5), (6, 5, 3))] = 1
    labels[blob_volume(shape, (17, 16 - i, 4), (3, 3, 2))] = 2
    image = rng.normal(0, 20, size=shape) + 40 + 80 * (labels == 1) + 160 * (labels == 2)
    affine = np.diag([1.5, 1.5, 4.0, 1.0])
    return nib.Nifti1Image(image.astype(np.int16), affine), nib.Nifti1Image(labels, affine)


def decathlon():
    top = os.path.join(ROOT, "decathlon")
    shutil.rmtree(top, ignore_errors=True)
    # Decathlon (v1): dataset.json lists the training pairs; labels map value -> name.
    root = os.path.join(top, "Task99_Mini")
    os.makedirs(os.path.join(root, "imagesTr"))
    os.makedirs(os.path.join(root, "labelsTr"))
    training = []
    for i in range(3):
        img, lab = volumes(i)
        nib.save(img, os.path.join(root, "imagesTr", f"mini_{i:03d}.nii.gz"))
        nib.save(lab, os.path.join(root, "labelsTr", f"mini_{i:03d}.nii.gz"))
        training.append({"image": f"./imagesTr/mini_{i:03d}.nii.gz", "label": f"./labelsTr/mini_{i:03d}.nii.gz"})
    with open(os.path.join(root, "dataset.json"), "w") as f:
        json.dump({"name": "Mini", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "organ", "2": "lesion"},
                   "numTraining": 3, "training": training, "test": []}, f, indent=2)
    # nnU-Net v2: labels map name -> value; images are <case>_0000.nii.gz, no training list.
    root = os.path.join(top, "Dataset098_MiniV2")
    os.makedirs(os.path.join(root, "imagesTr"))
    os.makedirs(os.path.join(root, "labelsTr"))
    for i in range(2):
        img, lab = volumes(i + 5)
        nib.save(img, os.path.join(root, "imagesTr", f"case_{i:03d}_0000.nii.gz"))
        nib.save(lab, os.path.join(root, "labelsTr", f"case_{i:03d}.nii.gz"))
    with open(os.path.join(root, "dataset.json"), "w") as f:
        json.dump({"channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1, "lesion": 2},
                   "numTraining": 2, "file_ending": ".nii.gz"}, f, indent=2)


def png_bytes(array):
    """A grayscale PNG (8- or 16-bit from the dtype), encoded by hand: signature, IHDR, IDAT, IEND."""
    import struct
    import zlib
    height, width = array.shape
    depth = 16 if array.dtype == np.uint16 else 8
    raw = b"".join(b"\x00" + (row.astype(">u2").tobytes() if depth == 16 else row.astype(np.uint8).tobytes()) for row in array)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png_tasks():
    top = os.path.join(ROOT, "pngtasks")
    shutil.rmtree(top, ignore_errors=True)
    yy, xx = np.mgrid[0:20, 0:24]
    for task, depth in [("discs8", np.uint8), ("discs16", np.uint16)]:
        for sub in ["images", "masks"]:
            os.makedirs(os.path.join(top, task, sub))
        for i in range(4):
            mask = (((yy - 8 - i) ** 2 + (xx - 10 - i) ** 2) < 25).astype(np.uint8)
            peak = 255 if depth == np.uint8 else 60000
            image = (rng.uniform(0, 0.3, size=mask.shape) + 0.5 * mask) * peak
            with open(os.path.join(top, task, "images", f"im{i}.png"), "wb") as f:
                f.write(png_bytes(image.astype(depth)))
            with open(os.path.join(top, task, "masks", f"im{i}.png"), "wb") as f:
                f.write(png_bytes(mask * 255))
    # Keep one image's exact samples, to check decoding.
    image = (np.arange(20 * 24).reshape(20, 24) * 131 % 65536).astype(np.uint16)
    with open(os.path.join(top, "reference16.png.bin"), "wb") as f:
        f.write(png_bytes(image))
    save_file({"reference16": image.astype(np.float32)}, os.path.join(top, "reference16.safetensors"))


if __name__ == "__main__":
    nifti()
    decathlon()
    png_tasks()
    print("wrote", os.path.normpath(os.path.join(ROOT, "nifti")), "and", os.path.normpath(os.path.join(ROOT, "decathlon")))
