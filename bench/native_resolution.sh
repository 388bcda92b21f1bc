#!/usr/bin/env bash
# Native-resolution segmentation against the squash-and-nearest path, on the real T1 volume of
# insighttoolkit5-examples (the real-scan fold: two halves of one 128x128x62 volume at 2x2x3 mm,
# five k-means tissue classes). Two W1 models are meta-trained the same way on four classes
# (first order, OUTER outer steps, meta-batch 4, seed 0): one by OLD, a build from before
# spacing-aware data (whole slices squashed to 64 px), one by this build on 64 px patches at
# the volume's own 2 mm spacing. Each adapts to the held-out class from 5 slices of the first
# half (100 Adam steps at 1e-3) and segments the second half: OLD's adapt (a 64 px prediction
# per slice, the mask scaled back by nearest neighbour) against this build's predict (sliding
# windows, probabilities resampled linearly to the native grid). Scored alike on the native
# grid by bench/volume_scores.py: 3D Dice and HD95 in mm. The new model adapts twice: from one
# window per support slice around the structure (the default), and from the whole support
# slices (--whole-support-slices). Then the same on a synthetic case.
# Usage: OLD=/path/to/old/medmaml-coordinator bench/native_resolution.sh [label] [outer-steps]
set -euo pipefail
cd "$(dirname "$0")/.."
LABEL=${1:-2}; OUTER=${2:-300}
NEW=.build/release/medmaml-coordinator
: "${OLD:?set OLD to a medmaml-coordinator built before spacing-aware data (for example git worktree add ../old 7429d9a)}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
$NEW datasets itk-fold --out "$W/itk" 2>/dev/null
common=(--dataset "$W/itk" --image-size 64 --hold-out "*/label-$LABEL/*" --order first --meta-batch 4 --in-process --threads 2 --seed 0 --log-level warning)
$OLD train "${common[@]}" --outer-steps "$OUTER" --checkpoint-dir "$W/old-model" >/dev/null
$NEW train "${common[@]}" --spacing median --outer-steps "$OUTER" --checkpoint-dir "$W/new-model" >/dev/null
mkdir -p "$W/target" "$W/reference"
cp "$W/itk/imagesTr/t1_part2_0000.nii.gz" "$W/target/"
cp "$W/itk/labelsTr/t1_part2.nii.gz" "$W/reference/"
$OLD adapt --checkpoint "$W/old-model/final.safetensors" --support "$W/itk/imagesTr/t1_part1_0000.nii.gz" \
    --support-masks "$W/itk/labelsTr/t1_part1.nii.gz" --label "$LABEL" --images "$W/target/t1_part2_0000.nii.gz" \
    --shots 5 --steps 100 --adam-rate 0.001 --out "$W/old-out" >/dev/null 2>&1
$NEW predict --checkpoint "$W/new-model/final.safetensors" --support "$W/itk/imagesTr/t1_part1_0000.nii.gz" \
    --support-masks "$W/itk/labelsTr/t1_part1.nii.gz" --label "$LABEL" -i "$W/target" -o "$W/new-out" \
    --shots 5 --steps 100 --adam-rate 0.001 >/dev/null 2>&1
$NEW predict --checkpoint "$W/new-model/final.safetensors" --support "$W/itk/imagesTr/t1_part1_0000.nii.gz" \
    --support-masks "$W/itk/labelsTr/t1_part1.nii.gz" --label "$LABEL" -i "$W/target" -o "$W/whole-out" \
    --shots 5 --steps 100 --adam-rate 0.001 --whole-support-slices >/dev/null 2>&1
old=$(ls "$W"/old-out/*_pred.nii.gz)
echo "# label $LABEL, $OUTER outer steps; 3D scores on the native 128x128x31 grid (2x2x3 mm)"
echo "squash_and_nearest $(python3 bench/volume_scores.py "$old" "$W/reference/t1_part2.nii.gz" "$LABEL" nonzero | tr '\n' ' ')"
echo "native_resolution $(python3 bench/volume_scores.py "$W/new-out/t1_part2.nii.gz" "$W/reference/t1_part2.nii.gz" "$LABEL" | tr '\n' ' ')"
echo "native_whole_support_slices $(python3 bench/volume_scores.py "$W/whole-out/t1_part2.nii.gz" "$W/reference/t1_part2.nii.gz" "$LABEL" | tr '\n' ' ')"

# A synthetic case with non-square, anisotropic slices (160x120 voxels of 1x1 mm, 3 mm apart;
# bench/make_volume.py): the same two models adapt to its label 1 from 5 slices of one case
# and segment another. OLD squashes each 160x120 slice to 64x64; this build resamples it to
# the model's 2 mm and slides 64 px windows over it.
python3 bench/make_volume.py "$W/syn-support.nii.gz" "$W/syn-support-label.nii.gz" 160 120 24 1,1,3 11
mkdir -p "$W/syn-target"
python3 bench/make_volume.py "$W/syn-target/case.nii.gz" "$W/syn-reference.nii.gz" 160 120 24 1,1,3 12
$OLD adapt --checkpoint "$W/old-model/final.safetensors" --support "$W/syn-support.nii.gz" \
    --support-masks "$W/syn-support-label.nii.gz" --label 1 --images "$W/syn-target/case.nii.gz" \
    --shots 5 --steps 100 --adam-rate 0.001 --out "$W/syn-old" >/dev/null 2>&1
$NEW predict --checkpoint "$W/new-model/final.safetensors" --support "$W/syn-support.nii.gz" \
    --support-masks "$W/syn-support-label.nii.gz" --label 1 -i "$W/syn-target" -o "$W/syn-new" \
    --shots 5 --steps 100 --adam-rate 0.001 >/dev/null 2>&1
$NEW predict --checkpoint "$W/new-model/final.safetensors" --support "$W/syn-support.nii.gz" \
    --support-masks "$W/syn-support-label.nii.gz" --label 1 -i "$W/syn-target" -o "$W/syn-whole" \
    --shots 5 --steps 100 --adam-rate 0.001 --whole-support-slices >/dev/null 2>&1
old=$(ls "$W"/syn-old/*_pred.nii.gz)
echo "# synthetic label 1; 3D scores on its native 160x120x24 grid (1x1x3 mm)"
echo "squash_and_nearest $(python3 bench/volume_scores.py "$old" "$W/syn-reference.nii.gz" 1 nonzero | tr '\n' ' ')"
echo "native_resolution $(python3 bench/volume_scores.py "$W/syn-new/case.nii.gz" "$W/syn-reference.nii.gz" 1 | tr '\n' ' ')"
echo "native_whole_support_slices $(python3 bench/volume_scores.py "$W/syn-whole/case.nii.gz" "$W/syn-reference.nii.gz" 1 | tr '\n' ' ')"
