import ArgumentParser
import CommandOptions
import Datasets
import Inference
import Training

struct Adapt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Adapt a trained model to a new task from a few labelled images and segment new images.",
        discussion: """
            PNG input: --support and --support-masks are folders of images and masks with the \
            same file names; --images is a folder; predicted masks are written as PNG (the \
            images' own size) under OUT/masks. NIfTI input: --support and --support-masks are a \
            volume and its label map; --images is a volume; the prediction is written as a uint8 \
            NIfTI with the input's header (OUT/<name>_pred.nii.gz). Images are preprocessed as the \
            model was trained (from its checkpoint); --axis and --ct-window may only repeat it. \
            With --masks (ground truth for --images), Dice, IoU, HD95, precision and recall (PNG) \
            or 3D Dice and HD95 in mm (NIfTI). For folders of volumes, use `predict`.
            """)

    @Option(help: "A checkpoint or final.safetensors.") var checkpoint: String
    @Option(help: "Labelled examples: a folder of PNGs or a NIfTI volume.") var support: String
    @Option(help: "Their masks: a folder of PNGs (same names) or a NIfTI label map.") var supportMasks: String
    @Option(help: "Images to segment: a folder of PNGs or a NIfTI volume.") var images: String
    @Option(help: "Ground truth for --images (optional), same kind.") var masks: String?
    @Option(help: "Output folder.") var out: String
    @OptionGroup var adaptation: AdaptationOptions
    @OptionGroup var numerics: NumericsOptions
    @Option(help: "Label value in NIfTI label maps (default: 1).") var label: Int = 1
    @Option(help: "Slice axis: only the model's own (its checkpoint says which).") var axis: SliceAxis?
    @Option(help: "CT window LEVEL,WIDTH: only the model's own.") var ctWindow: String?

    func run() throws {
        let model = try TrainedModel.load(checkpoint)
        let options = model.run.dataset.options
        if let axis, axis != options.axis {
            throw ValidationError("--axis \(axis.rawValue): the model was trained on \(options.axis.rawValue) slices, and adapting it on others would feed it what it never saw; leave --axis out")
        }
        if let ctWindow, try DataOptions.ctWindow(ctWindow) != options.normalisation {
            throw ValidationError("--ct-window \(ctWindow): the model was trained with \(options.normalisation); leave --ct-window out")
        }
        try applyNumerics(numerics.settings(defaults: model.run.numerics))
        var settings = AdaptJob.Settings(support: support, supportMasks: supportMasks, images: images, output: out)
        settings.masks = masks
        settings.label = label
        settings.shots = adaptation.shots
        let setting = adaptation.setting(for: model)
        note("adapting from \(adaptation.shots) labelled image(s) at most with \(setting)")
        if let metrics = try AdaptJob(model: model, settings: settings).run(setting: setting) {
            if let d = metrics.dice { print("dice \(d)") }
            if let v = metrics.volume { print(String(format: "dice %.4f", v.dice) + (v.hd95.map { String(format: "\nhd95_mm %.2f", $0) } ?? "")) }
        }
        print("wrote \(out)")
    }
}
