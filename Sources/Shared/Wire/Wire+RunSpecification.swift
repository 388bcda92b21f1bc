extension Wire {
    /// The run's specification as WELCOME carries it: everything a worker needs to compute
    /// the run's tasks, and nothing else, as plain fields. This is the protocol's own schema:
    /// it changes only with the protocol version, whatever the training types above it do.
    /// A worker validates all of it before use (see docs/PROTOCOL.md).
    public struct RunSpecification: Codable, Sendable, Equatable {
        /// 32 hex characters.
        public var runID: String
        /// Seed of task sampling and of the images of generated data.
        public var seed: UInt64
        /// Seed of the initial parameters (for the numerics fingerprint).
        public var initSeed: UInt64
        public var model: Model
        public var learner: Learner
        public var dataset: Dataset
        /// Shell patterns of the meta-validation and meta-test task names; every other task is
        /// meta-train.
        public var validationPatterns: [String]
        public var testPatterns: [String]
        public var heldOut: HeldOut
        /// What every process of the run computes with (new in version 5).
        public var numerics: Numerics

        public init(runID: String, seed: UInt64, initSeed: UInt64, model: Model, learner: Learner, dataset: Dataset,
                    validationPatterns: [String] = [], testPatterns: [String], heldOut: HeldOut, numerics: Numerics) {
            self.numerics = numerics
            self.validationPatterns = validationPatterns
            self.runID = runID
            self.seed = seed
            self.initSeed = initSeed
            self.model = model
            self.learner = learner
            self.dataset = dataset
            self.testPatterns = testPatterns
            self.heldOut = heldOut
        }

        /// The model graph: node 0 is the input, every other node reads earlier nodes.
        public struct Model: Codable, Sendable, Equatable {
            public var name: String
            public var channels: Int
            public var height: Int
            public var width: Int
            public var nodes: [Node]
            public init(name: String, channels: Int, height: Int, width: Int, nodes: [Node]) {
                self.name = name
                self.channels = channels
                self.height = height
                self.width = width
                self.nodes = nodes
            }
        }

        /// One node: its name, its layer (`input`, `conv2d`, `groupNorm`, `relu`, `maxPool2`,
        /// `upsample2`, `concat`), its inputs, and the layer's settings where it has any.
        public struct Node: Codable, Sendable, Equatable {
            public var name: String
            public var layer: String
            public var inputs: [Int]
            public var outChannels: Int?
            public var kernel: Int?
            public var bias: Bool?
            public var groups: Int?
            public var epsilon: Double?
            public init(name: String, layer: String, inputs: [Int], outChannels: Int? = nil, kernel: Int? = nil,
                        bias: Bool? = nil, groups: Int? = nil, epsilon: Double? = nil) {
                self.name = name
                self.layer = layer
                self.inputs = inputs
                self.outChannels = outChannels
                self.kernel = kernel
                self.bias = bias
                self.groups = groups
                self.epsilon = epsilon
            }
        }

        /// The inner loop and the meta-gradient.
        public struct Learner: Codable, Sendable, Equatable {
            public var supportShots: Int
            public var queryShots: Int
            public var innerSteps: Int
            public var innerLearningRate: Float
            public var learnedInnerRates: Bool
            /// `second`, `first` or `reptile`.
            public var order: String
            public var firstOrderSteps: Int
            public var multiStepLoss: Bool
            public var multiStepAnnealSteps: Int
            /// The inner loop adapts only the output head (ANIL; new in version 3).
            public var headOnlyInnerLoop: Bool
            /// Proto-MAML: the support set's prototype head is added to the output head before
            /// the inner loop (new in version 4).
            public var prototypeHead: Bool
            public init(supportShots: Int, queryShots: Int, innerSteps: Int, innerLearningRate: Float, learnedInnerRates: Bool,
                        order: String, firstOrderSteps: Int, multiStepLoss: Bool, multiStepAnnealSteps: Int,
                        headOnlyInnerLoop: Bool = false, prototypeHead: Bool = false) {
                self.supportShots = supportShots
                self.queryShots = queryShots
                self.innerSteps = innerSteps
                self.innerLearningRate = innerLearningRate
                self.learnedInnerRates = learnedInnerRates
                self.order = order
                self.firstOrderSteps = firstOrderSteps
                self.multiStepLoss = multiStepLoss
                self.multiStepAnnealSteps = multiStepAnnealSteps
                self.headOnlyInnerLoop = headOnlyInnerLoop
                self.prototypeHead = prototypeHead
            }
        }

        /// Which data, how it is preprocessed, and what the coordinator found when it loaded it.
        public struct Dataset: Codable, Sendable, Equatable {
            /// `synthetic`, `decathlon`, `pngFolders` or `universe`.
            public var kind: String
            /// The dataset folder's name: one path component, looked up under `--data-root`.
            public var name: String
            /// The path the coordinator opened (used when the worker has no `--data-root`).
            public var path: String
            public var identityName: String
            public var fingerprint: String
            /// `axial`, `coronal` or `sagittal`.
            public var axis: String
            public var size: Int
            public var normalisation: Normalisation
            public var requireLabel: Bool
            public var sameVolume: Bool
            public var augment: Bool
            public var skipBad: Bool
            /// Present for pretraining: self-supervised pseudo-tasks on the unlabelled images.
            public var pseudo: Pseudo?
            public var includeTrainingImages: Bool
            /// Present for meta-training with superpixel pseudo-tasks beside the labelled
            /// tasks, on the images of the meta-train tasks (the run's split). Absent in
            /// older messages; a worker that does not know it opens other data, and its
            /// dataset fingerprint in READY does not match.
            public var pseudoBesideTasks: Pseudo?
            /// True for meta-training with union tasks beside the labelled tasks (every two
            /// meta-train tasks that label the same images, united). Absent when false and in
            /// older messages; a worker that does not know it opens other data, and its
            /// dataset fingerprint in READY does not match.
            public var unionBesideTasks: Bool?
            /// Present for the task universe (kind `universe`).
            public var universe: Universe?
            /// True when the support and the query come from different volumes.
            public var separateVolumes: Bool?
            /// The in-plane spacing (mm per pixel) a volume's slices are resampled to before
            /// patches are cut; absent: whole slices resized to the model's input.
            public var spacing: Double?
            public init(kind: String, name: String, path: String, identityName: String, fingerprint: String, axis: String,
                        size: Int, normalisation: Normalisation, requireLabel: Bool, sameVolume: Bool, augment: Bool,
                        skipBad: Bool, pseudo: Pseudo?, includeTrainingImages: Bool, pseudoBesideTasks: Pseudo? = nil,
                        unionBesideTasks: Bool? = nil, universe: Universe? = nil, separateVolumes: Bool? = nil, spacing: Double? = nil) {
                self.kind = kind
                self.name = name
                self.path = path
                self.identityName = identityName
                self.fingerprint = fingerprint
                self.axis = axis
                self.size = size
                self.normalisation = normalisation
                self.requireLabel = requireLabel
                self.sameVolume = sameVolume
                self.augment = augment
                self.skipBad = skipBad
                self.pseudo = pseudo
                self.includeTrainingImages = includeTrainingImages
                self.pseudoBesideTasks = pseudoBesideTasks
                self.unionBesideTasks = unionBesideTasks
                self.universe = universe
                self.separateVolumes = separateVolumes
                self.spacing = spacing
            }
        }

        /// The task universe's settings: meta-train task types (absent: unbounded), whether
        /// meta-augmentation is on, and the seed that picks the types.
        public struct Universe: Codable, Sendable, Equatable {
            public var types: Int?
            public var metaAugmentation: Bool
            public var seed: UInt64
            public init(types: Int?, metaAugmentation: Bool, seed: UInt64) {
                self.types = types
                self.metaAugmentation = metaAugmentation
                self.seed = seed
            }
        }

        /// Intensity normalisation: `zscore` (clipping to the `low`/`high` percentiles) or
        /// `ctWindow` (`level` and `width` in HU).
        public struct Normalisation: Codable, Sendable, Equatable {
            public var kind: String
            public var low: Double?
            public var high: Double?
            public var level: Double?
            public var width: Double?
            public init(kind: String, low: Double? = nil, high: Double? = nil, level: Double? = nil, width: Double? = nil) {
                self.kind = kind
                self.low = low
                self.high = high
                self.level = level
                self.width = width
            }
        }

        /// Superpixel pseudo-task settings (pretraining).
        public struct Pseudo: Codable, Sendable, Equatable {
            public var superpixels: Int
            public var compactness: Float
            public var maximumMerged: Int
            public var minimumArea: Double
            public var maximumArea: Double
            public init(superpixels: Int, compactness: Float, maximumMerged: Int, minimumArea: Double, maximumArea: Double) {
                self.superpixels = superpixels
                self.compactness = compactness
                self.maximumMerged = maximumMerged
                self.minimumArea = minimumArea
                self.maximumArea = maximumArea
            }
        }

        /// The numerics settings: oneDNN's instruction set (`avx2`, `avx512`, `avx512-bf16`,
        /// `avx512-amx`), the matrix library (`onednn`, `openblas`), the convolution path
        /// (`winograd`, `primitives`, `im2col`; absent, from a coordinator of before Winograd was
        /// a default: `primitives` with oneDNN, `im2col` with OpenBLAS), the convolutions' precision (`bf16`, absent: Float32; new in version 6), kept inner steps
        /// (absent: the default rule).
        public struct Numerics: Codable, Sendable, Equatable {
            public var cpuKernels: String
            public var matrixLibrary: String
            public var convolution: String?
            public var precision: String?
            public var keptSteps: Int?
            public init(cpuKernels: String, matrixLibrary: String, convolution: String?, precision: String? = nil, keptSteps: Int?) {
                self.cpuKernels = cpuKernels
                self.matrixLibrary = matrixLibrary
                self.convolution = convolution
                self.precision = precision
                self.keptSteps = keptSteps
            }
        }

        /// How held-out tasks are adapted and scored during training.
        public struct HeldOut: Codable, Sendable, Equatable {
            public var seed: UInt64
            public var support: Int
            public var query: Int
            /// Inner steps when adapting (nil: the learner's).
            public var steps: Int?
            public var perTask: Int
            public init(seed: UInt64, support: Int, query: Int, steps: Int?, perTask: Int) {
                self.seed = seed
                self.support = support
                self.query = query
                self.steps = steps
                self.perTask = perTask
            }
        }
    }
}
