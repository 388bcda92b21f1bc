import ArgumentParser
import CommandOptions
import Datasets
import Evaluation
import Foundation
import Inference
import Training

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Adapt a trained model to one or more structures from a few labelled cases, then segment every case of a folder (nnU-Net style).",
        discussion: """
            The support (--support with --support-masks, repeated for more cases) is NIfTI \
            volumes with label maps, or folders of PNG images with folders of masks of the same \
            names; the model adapts once per --label. Every .nii/.nii.gz case in -i is \
            preprocessed as the model was trained (its spacing, normalisation and axis, from the \
            checkpoint), segmented slice by slice with overlapping sliding windows weighted by a \
            Gaussian, resampled back to its own grid with linear interpolation, and written to -o \
            as a NIfTI label map with the input's header (several labels in one map). \
            --reference DIR scores each output against the label map of the same name (3D Dice \
            and HD95 in mm). Writes predictions.json beside the outputs.
            """)

    @Option(help: "A checkpoint or final.safetensors.") var checkpoint: String
    @Option(help: "A labelled case: a NIfTI volume, or a folder of PNG images (repeat for more cases).") var support: [String] = []
    @Option(help: "Its label map, or a folder of PNG masks with the images' names (one per --support).") var supportMasks: [String] = []
    @Option(help: "A label value to adapt to and segment (repeatable).") var label: [Int] = []
    @Option(name: .customShort("i"), help: "Folder of NIfTI cases to segment.") var input: String
    @Option(name: .customShort("o"), help: "Output folder.") var output: String
    @OptionGroup var adaptation: AdaptationOptions
    @Flag(help: "Adapt from every window of each support slice (the slice's own share of structure and background) instead of one window around the structure: lower boundary errors, at a cost in time and memory that grows with the slices' area.")
    var wholeSupportSlices = false
    @OptionGroup var numerics: NumericsOptions
    @Option(help: "Sliding-window size in pixels (default: the model's input size; a multiple of its poolings).") var window: Int?
    @Option(help: "Overlap of neighbouring windows (0...0.95).") var overlap = 0.5
    @Option(help: "Threads.") var threads = 2
    @Option(help: "Write the adapted parameters to this file, to reuse with --adapted.") var saveAdapted: String?
    @Option(help: "Use adapted parameters saved with --save-adapted instead of adapting.") var adapted: String?
    @Option(help: "Folder of reference label maps named as the outputs: score each case (3D Dice and HD95 in mm).") var reference: String?

    func validate() throws {
        guard support.count == supportMasks.count else { throw ValidationError("give one --support-masks for each --support") }
    }

    func run() throws {
        let model = try TrainedModel.load(checkpoint)
        try applyNumerics(numerics.settings(defaults: model.run.numerics))
        var settings = PredictJob.Settings(checkpoint: checkpoint, input: input, output: output)
        settings.support = zip(support, supportMasks).map { PredictJob.Support(images: $0, labels: $1) }
        settings.labels = label
        settings.shots = adaptation.shots
        settings.cut = wholeSupportSlices ? .wholeSlices : .aroundStructure
        settings.setting = adaptation.setting(for: model)
        settings.window = window
        settings.overlap = overlap
        settings.threads = threads
        settings.saveAdapted = saveAdapted
        settings.adapted = adapted
        settings.reference = reference
        let report = try PredictJob(settings: settings).run { note($0) }
        print("wrote \(report.cases.count) case(s) to \(output)")
    }
}
