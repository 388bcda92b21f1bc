import Core
import Datasets
import Foundation
import Logging
import Pretraining

/// Which dataset a run uses and how to open it: the description that travels in checkpoints
/// and (in its wire form) to workers, and the factory that opens "synthetic", a
/// Decathlon/nnU-Net folder, a folder of PNG tasks, or any of them as unlabelled images for
/// pretraining.
public struct DatasetSpec: Codable, Hashable, Sendable {
    public enum Kind: String, Codable, Sendable { case synthetic, decathlon, pngFolders, universe }
    public var kind: Kind
    /// The dataset folder's name (workers look for it under `--data-root`).
    public var name: String
    /// The path the coordinator opened (used by workers when no data root is given).
    public var path: String
    public var options: VolumeOptions
    /// What the coordinator loaded; a worker's copy must match it.
    public var identity: DatasetIdentity
    /// Set for pretraining: self-supervised pseudo-tasks on the dataset's unlabelled images.
    public var pseudo: PseudoTaskOptions? = nil
    /// Pretraining on a Decathlon folder: use imagesTr as well as imagesTs.
    public var includeTrainingImages = false
    /// Set for meta-training with superpixel pseudo-tasks beside the labelled tasks, on the
    /// meta-train tasks' images (`PseudoAugmentedSource`).
    public var pseudoBesideTasks: PseudoTaskOptions? = nil
    /// Set for meta-training with union tasks beside the labelled tasks: every two meta-train
    /// tasks that label the same images, united (`UnionAugmentedSource`).
    public var unionBesideTasks = false
    /// The task universe's settings (`kind == .universe`).
    public var universe: TaskUniverse.Options? = nil

    public init(kind: Kind, name: String, path: String, options: VolumeOptions, identity: DatasetIdentity) {
        self.kind = kind
        self.name = name
        self.path = path
        self.options = options
        self.identity = identity
    }

    enum CodingKeys: String, CodingKey {
        case kind, name, path, options, identity, pseudo, includeTrainingImages, pseudoBesideTasks, unionBesideTasks, universe
    }

    /// Fields added after the first version decode with their defaults, so older
    /// checkpoints and run specifications still load.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(Kind.self, forKey: .kind)
        name = try c.decode(String.self, forKey: .name)
        path = try c.decode(String.self, forKey: .path)
        options = try c.decode(VolumeOptions.self, forKey: .options)
        identity = try c.decode(DatasetIdentity.self, forKey: .identity)
        pseudo = try c.decodeIfPresent(PseudoTaskOptions.self, forKey: .pseudo)
        includeTrainingImages = try c.decodeIfPresent(Bool.self, forKey: .includeTrainingImages) ?? false
        pseudoBesideTasks = try c.decodeIfPresent(PseudoTaskOptions.self, forKey: .pseudoBesideTasks)
        unionBesideTasks = try c.decodeIfPresent(Bool.self, forKey: .unionBesideTasks) ?? false
        universe = try c.decodeIfPresent(TaskUniverse.Options.self, forKey: .universe)
    }

    /// This labelled dataset with superpixel pseudo-tasks beside its tasks, on the images of
    /// `split`'s meta-train tasks: the description for workers and the source. Pseudo-tasks
    /// are meta-train tasks; a split whose patterns would make one a meta-validation or
    /// meta-test task is refused, naming the task and the pattern's role.
    public func addingPseudoTasks(_ options: PseudoTaskOptions, to source: TaskSource, split: TaskSplit) throws(DataError) -> (DatasetSpec, TaskSource) {
        precondition(pseudo == nil, "pseudo-tasks beside pseudo-tasks")
        guard !unionBesideTasks else { throw .badRequest("pseudo-tasks and union tasks together: choose one kind of task augmentation") }
        let augmented = PseudoAugmentedSource(base: source, split: split, options: options)
        try Self.checkMetaTrain(augmented.pseudo.taskNames, kind: "pseudo-tasks", prefix: "pseudo/", split: split)
        var spec = self
        spec.pseudoBesideTasks = options
        spec.identity = augmented.identity
        return (spec, augmented)
    }

    /// This labelled dataset with union tasks beside its tasks (every two meta-train tasks of
    /// `split` that label the same images, united): the description for workers and the
    /// source. Union tasks are meta-train tasks; a split whose patterns would make one a
    /// meta-validation or meta-test task is refused, as is a dataset with no tasks to unite.
    public func addingUnionTasks(to source: TaskSource, split: TaskSplit) throws(DataError) -> (DatasetSpec, TaskSource) {
        guard pseudo == nil, pseudoBesideTasks == nil else {
            throw .badRequest("union tasks need labelled tasks: not beside pseudo-tasks, and not in pretraining")
        }
        let augmented = try UnionAugmentedSource(base: source, split: split)
        try Self.checkMetaTrain(augmented.unionNames, kind: "union tasks", prefix: "union/", split: split)
        var spec = self
        spec.unionBesideTasks = true
        spec.identity = augmented.identity
        return (spec, augmented)
    }

    /// The same task universe with meta-augmentation: its description and source.
    public func withMetaAugmentation() throws(DataError) -> (DatasetSpec, TaskSource) {
        guard kind == .universe, var options = universe else { throw .badRequest("meta-augmentation needs the task universe (--dataset universe)") }
        options.metaAugmentation = true
        let source = try TaskUniverse(size: self.options.size, options: options)
        var spec = self
        spec.universe = options
        spec.identity = source.identity
        return (spec, source)
    }

    /// Added tasks are meta-train tasks: refuses a split that would hold any out.
    private static func checkMetaTrain(_ names: [String], kind: String, prefix: String, split: TaskSplit) throws(DataError) {
        let misplaced = names.map { ($0, split.role(of: $0)) }.filter { $0.1 != .train }.map { "\($0.0) (\($0.1.rawValue))" }
        guard misplaced.isEmpty else {
            throw .badRequest("the split's patterns make \(kind) held-out tasks: \(misplaced.prefix(3).joined(separator: ", "))"
                              + (misplaced.count > 3 ? " and \(misplaced.count - 3) more" : "")
                              + "; \(kind) are meta-train tasks, so narrow the validation and test patterns (their names start with \(prefix))")
        }
    }

    /// Opens a dataset's unlabelled images as self-supervised pseudo-tasks (pretraining):
    /// the synthetic family's images, a Decathlon folder's imagesTs/ (and imagesTr/ with
    /// `includeTraining`), or the images of PNG task folders.
    public static func openPseudo(_ path: String, options requested: VolumeOptions, pseudo: PseudoTaskOptions, includeTraining: Bool,
                                  logger: Logger) throws -> (DatasetSpec, TaskSource) {
        // Unlabelled images are resized whole to the model's input.
        var options = requested
        options.resampling = .squash
        let images: UnlabelledImages
        let kind: Kind
        if let variant = SyntheticFamily.Variant(rawValue: path) {
            images = SyntheticUnlabelled(size: options.size, variant: variant)
            kind = .synthetic
        } else {
            images = try FileUnlabelled(root: path, options: options, includeTraining: includeTraining, logger: logger)
            kind = FileManager.default.fileExists(atPath: path + "/dataset.json") ? .decathlon : .pngFolders
        }
        let source = PseudoTaskSource(images: images, options: pseudo)
        let name = kind == .synthetic ? path : URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent
        var spec = DatasetSpec(kind: kind, name: name, path: path, options: options, identity: source.identity)
        spec.pseudo = pseudo
        spec.includeTrainingImages = includeTraining
        return (spec, source)
    }

    /// Opens "synthetic" or "synthetic-multi" (the built-in families), "universe" (the task
    /// universe, with `universe`'s settings), a Decathlon/nnU-Net folder (with dataset.json)
    /// or a folder of PNG tasks.
    public static func open(_ path: String, options requested: VolumeOptions, universe: TaskUniverse.Options = .init(),
                            logger: Logger) throws -> (DatasetSpec, TaskSource) {
        var options = requested
        // Generated images are drawn at the model's input size: their pixels are their spacing.
        if SyntheticFamily.Variant(rawValue: path) != nil || path == "universe" { options.resampling = .squash }
        if let source = SyntheticFamily(name: path, size: options.size) {
            return (DatasetSpec(kind: .synthetic, name: path, path: path, options: options, identity: source.identity), source)
        }
        if path == "universe" {
            let source = try TaskUniverse(size: options.size, options: universe)
            var spec = DatasetSpec(kind: .universe, name: path, path: path, options: options, identity: source.identity)
            spec.universe = universe
            return (spec, source)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError.unreadable(path: path, reason: "neither \"synthetic\", \"synthetic-multi\" nor a folder")
        }
        let name = URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent
        let source: TaskSource
        let kind: Kind
        var resolved = options
        if FileManager.default.fileExists(atPath: path + "/dataset.json") {
            let volumes = try DecathlonDataset(root: path, options: options, logger: logger)
            // The median spacing as the dataset resolved it: what workers and checkpoints record.
            resolved = volumes.options
            source = volumes
            kind = .decathlon
        } else {
            // PNG folders have no voxel size: their images are resized to the model's input.
            resolved.resampling = .squash
            source = try PNGFolderDataset(root: path, options: resolved, logger: logger)
            kind = .pngFolders
        }
        return (DatasetSpec(kind: kind, name: name, path: path, options: resolved, identity: source.identity), source)
    }

    /// Opens the same dataset on a worker: under `dataRoot` by name if given, else at the
    /// coordinator's path; pseudo-tasks or union tasks beside the tasks follow the run's
    /// `split`. The caller compares `identity` (the coordinator does, on READY).
    public func openOnWorker(dataRoot: String?, split: TaskSplit, logger: Logger) throws -> TaskSource {
        let location = kind == .synthetic || kind == .universe ? path : (dataRoot.map { $0 + "/" + name } ?? path)
        var source: TaskSource
        if let pseudo {
            source = try Self.openPseudo(location, options: options, pseudo: pseudo, includeTraining: includeTrainingImages, logger: logger).1
        } else {
            source = try Self.open(location, options: options, universe: universe ?? .init(), logger: logger).1
        }
        if let besides = pseudoBesideTasks {
            source = PseudoAugmentedSource(base: source, split: split, options: besides)
        }
        if unionBesideTasks {
            source = try UnionAugmentedSource(base: source, split: split)
        }
        if source.identity != identity {
            logger.error("this worker's data differs from the coordinator's", metadata: [
                "path": "\(location)", "fingerprint.worker": "\(source.identity.fingerprint.prefix(16))",
                "fingerprint.coordinator": "\(identity.fingerprint.prefix(16))"])
        }
        return source
    }
}
