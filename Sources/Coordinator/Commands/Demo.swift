import ArgumentParser
import Cluster
import CommandOptions
import Core
import Foundation
import Logging
import Service
import Study
import Training

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The main job: does meta-learning beat transfer learning where tasks are many and diverse? The regime map's central comparison, small, and the same models on a real MRI.",
        discussion: """
            On the task universe with fresh task types for every sample, trains the map's \
            meta-learning recipe (Proto-MAML with no inner steps, meta-augmented), multi-class \
            transfer and scratch for the same budget of core-seconds (meta-training on two \
            local worker processes over CURVE-encrypted ZeroMQ), chooses every setting on the \
            meta-validation rules for each number of adaptation steps, and meets the held-out \
            meta-test rules once at K = 1 and 5: fast adaptation (at most 5 steps) and any \
            number of steps. Then the same models meet the real-scan fold (Debian's \
            insighttoolkit5-examples: one T1 MRI and its k-means tissue classes, support and \
            query from different halves). One training seed: the full map (`map`) has three. \
            Writes report.txt (its first lines say where meta-learning wins and where it does \
            not), results.json, figures and index.html into --out; the same command continues \
            an interrupted demo.
            """)

    @Option(help: "Output folder.") var out: String
    @Option(help: "Meta-training task types, comma-separated (`unbounded`: fresh types every sample).") var taskTypes = "unbounded"
    @Option(help: "The real-scan fold's folder (built there from insighttoolkit5-examples when missing; default: OUT/real-scan-fold).")
    var realScanFold: String?
    @OptionGroup var input: InputSizeOptions
    @OptionGroup var model: ModelOptions
    @OptionGroup var tasks: TaskOptions
    @OptionGroup var study: StudyOptions
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var numerics: NumericsOptions

    @OptionGroup var runFile: RunFileOptions

    func run() throws {
        let logger = makeLogger(cluster.logLevel)
        StopSignal.install()
        let clock = MonotonicClock()
        let base = try trainingConfig(size: input.size(.demo), model: model, tasks: tasks, preset: .demo)
        let protocolSettings = try study.studyProtocol(.demo, shots: tasks.shots)
        var settings = try Demo.settings(out: out, base: base, protocol: protocolSettings, typeCounts: try RegimeMap.typeCounts(taskTypes))
        let (fold, missing) = try Demo.realScanFold(in: realScanFold ?? out + "/real-scan-fold", size: input.size(.demo),
                                                    perTask: protocolSettings.testPerTask, logger: logger)
        settings.crossDomain = fold
        if let missing { note(missing) }
        let clusterSettings = cluster.settings(defaultLocalWorkers: 2)
        settings.threads = clusterSettings.hostThreads
        try clusterSettings.validate()
        try applyNumerics(numerics.settings(defaults: Demo.numerics))
        try writeRunFile(into: out)
        let map = try RegimeMap(settings: settings, launcher: TrainingLauncher(settings: clusterSettings, runFile: RunFile.effective, logger: logger),
                                logger: logger) { note($0) }
        do { try map.run() } catch let stopped as StudyStopped {
            throw stoppedBySignal(stopped.signal, "run the same command to continue")
        }
        note("wrote \(out)/report.txt, results.json, index.html and the figures in \(ProgressLine.duration(clock.now))")
    }
}
