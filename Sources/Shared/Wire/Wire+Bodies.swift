/// The JSON bodies of the commands.
extension Wire {
    public struct Hello: Codable, Sendable, Equatable {
        public var protocolVersion: UInt16
        public var name: String
        public var threads: Int
        /// The run the worker last belonged to, if any: a worker of another run is refused.
        public var previousRun: String?
        public init(name: String, threads: Int, previousRun: String?) {
            protocolVersion = Wire.version
            self.name = name
            self.threads = threads
            self.previousRun = previousRun
        }
    }

    /// The run's specification, in its wire form, and the coordinator's heartbeat interval
    /// (seconds; new in version 7), which the worker adopts: a worker needs nothing else.
    public struct Welcome: Codable, Sendable, Equatable {
        public var run: RunSpecification
        public var heartbeat: Double
        public init(run: RunSpecification, heartbeat: Double = Wire.heartbeatInterval) {
            self.run = run
            self.heartbeat = heartbeat
        }
    }

    public struct Ready: Codable, Sendable, Equatable {
        public var datasetFingerprint: String
        public var numericsFingerprint: String
        /// The matrix kernels in use (for the refusal message when numerics differ).
        public var kernel: String
        public init(datasetFingerprint: String, numericsFingerprint: String, kernel: String) {
            self.datasetFingerprint = datasetFingerprint
            self.numericsFingerprint = numericsFingerprint
            self.kernel = kernel
        }
    }

    /// A reason, and the task slot it concerns if any (REFUSED, FAILED, RESET, SHUTDOWN).
    public struct Notice: Codable, Sendable, Equatable {
        public var reason: String
        public var slot: Int?
        public init(reason: String, slot: Int? = nil) {
            self.reason = reason
            self.slot = slot
        }
    }

    public struct Params: Codable, Sendable, Equatable {
        public var count: Int
        public init(count: Int) { self.count = count }
    }

    public enum TaskKind: String, Codable, Sendable {
        /// The task's meta-gradient at the step's parameters.
        case metaGradient
        /// Adapt to the task and score its query set (meta-test).
        case evaluate
    }

    /// A task of the dataset (its number in the run's task list) and a sample index: with the
    /// run's seed, this determines the images exactly.
    public struct TaskReference: Codable, Hashable, Sendable {
        public var task: Int
        public var index: UInt64
        public init(task: Int, index: UInt64) {
            self.task = task
            self.index = index
        }
    }

    public struct Task: Codable, Sendable, Equatable {
        public var slot: Int
        public var kind: TaskKind
        public var ref: TaskReference
        public init(slot: Int, kind: TaskKind, ref: TaskReference) {
            self.slot = slot
            self.kind = kind
            self.ref = ref
        }
    }

    public struct Result: Codable, Sendable, Equatable {
        public var slot: Int
        public var kind: TaskKind
        public var queryLoss: Float
        public var queryDice: Float
        public var supportLoss: Float
        public var objective: Float
        public var seconds: Double
        public init(slot: Int, kind: TaskKind, queryLoss: Float, queryDice: Float, supportLoss: Float, objective: Float, seconds: Double) {
            self.slot = slot
            self.kind = kind
            self.queryLoss = queryLoss
            self.queryDice = queryDice
            self.supportLoss = supportLoss
            self.objective = objective
            self.seconds = seconds
        }
    }

    public struct Empty: Codable, Sendable, Equatable { public init() {} }
}
