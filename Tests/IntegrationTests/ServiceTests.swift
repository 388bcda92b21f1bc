import Foundation
import Testing
import TestSupport
import Training

/// Running MedMAML as a service: Prometheus metrics of real runs, and run files.
@Suite struct ServiceTests {
    let folder = TemporaryFolder()

    func coordinator(_ args: [String], name: String) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-coordinator"), args, name: name, folder: folder.path)
    }

    /// The metrics URL a process logged (it binds port 0, so the kernel picks the port).
    func metricsURL(_ p: ChildProcess) throws -> String {
        #expect(p.waitFor("serving Prometheus metrics", timeout: 120), "\(p.stderr.suffix(2000))")
        let line = try #require(p.stderr.split(separator: "\n").first { $0.contains("serving Prometheus metrics") })
        let start = try #require(line.range(of: "http://"))
        return String(line[start.lowerBound...].prefix { !$0.isWhitespace && $0 != "\"" && $0 != "]" && $0 != "," })
    }

    /// Scrapes until `ready` holds of the parsed exposition (or the timeout passes).
    func scrape(_ url: String, timeout: Double = 120, until ready: (Exposition) -> Bool) throws -> Exposition {
        let deadline = Date().addingTimeInterval(timeout)
        var last: Exposition?
        while Date() < deadline {
            if let text = Exposition.fetch(url) {
                let e = try Exposition(text)   // every scrape must parse
                last = e
                if ready(e) { return e }
            }
            usleep(200_000)
        }
        return try #require(last, "no scrape of \(url) succeeded")
    }

    /// Every MedMAML series of a scrape carries `run="<run id>"`, the id of the run that
    /// `folder` checkpoints.
    func expectRunLabel(_ e: Exposition, of folder: String, _ what: String) throws {
        let checkpoint = try #require(Checkpoint.files(in: folder).first, "no checkpoint in \(folder)")
        let run = try Checkpoint.read(path: checkpoint).run.runID
        let ours = e.samples.filter { $0.name.hasPrefix("medmaml_") }
        #expect(!ours.isEmpty, "\(what): no medmaml_ series")
        let unlabelled = ours.filter { $0.labels["run"] != run }
        #expect(unlabelled.isEmpty, "\(what): series without run=\"\(run)\": \(unlabelled.prefix(5).map { "\($0.name)\($0.labels)" })")
    }

    @Test func aCoordinatorAndItsWorkersServeMetricsThatParse() throws {
        let c = try coordinator(["train", "--image-size", "32", "--base-channels", "4", "--meta-batch", "2", "--outer-steps", "40",
                                 "--in-process", "--threads", "1", "--checkpoint-every", "0", "--eval-every", "10",
                                 "--checkpoint-dir", folder.path + "/run", "--metrics-address", "127.0.0.1:0"], name: "coordinator")
        let url = try metricsURL(c)
        let e = try scrape(url) { ($0.value("medmaml_step") ?? 0) >= 12 && $0.value("medmaml_heldout_dice") != nil }
        #expect(e.types["medmaml_step"] == "gauge")
        #expect(e.types["medmaml_steps_total"] == "counter")
        for name in ["medmaml_meta_loss", "medmaml_query_dice", "medmaml_tasks_per_second", "medmaml_step_seconds",
                     "medmaml_heldout_dice", "medmaml_steps_planned"] {
            let v = try #require(e.value(name), "\(name) missing")
            #expect(v.isFinite, "\(name) = \(v)")
        }
        #expect(e.value("medmaml_steps_planned") == 40)
        #expect(e.value("medmaml_training_diverged") == 0)
        let lastStep = try #require(e.value("medmaml_last_step_timestamp_seconds"))
        #expect(abs(lastStep - Date().timeIntervalSince1970) < 60, "last step at \(lastStep)")
        #expect(c.waitExit(timeout: 300) == 0, "\(c.stderr.suffix(2000))")
        try expectRunLabel(e, of: folder.path + "/run", "in-process coordinator")
    }

    /// A run that diverges says so on its metrics (`medmaml_training_diverged 1`) and waits
    /// for one more scrape before it exits, so Prometheus sees it.
    @Test func divergenceReachesTheLastScrape() throws {
        // Large enough that its two steps (it diverges at the second) outlast the first scrape:
        // a process nobody has scraped exits at once.
        let c = try coordinator(["train", "--image-size", "64", "--base-channels", "8", "--meta-batch", "4", "--outer-steps", "30",
                                 "--in-process", "--threads", "1", "--checkpoint-every", "0", "--meta-lr", "1e30",
                                 "--checkpoint-dir", folder.path + "/diverged", "--metrics-address", "127.0.0.1:0"], name: "diverging")
        let url = try metricsURL(c)
        var diverged: Exposition?
        while c.isRunning {
            if let text = Exposition.fetch(url), let e = try? Exposition(text), e.value("medmaml_training_diverged") == 1 { diverged = e }
            usleep(300_000)
        }
        let status = c.waitExit(timeout: 60)
        #expect(status != nil && status != 0, "\(c.stderr.suffix(2000))")
        #expect(c.stderr.contains("training diverged") && c.stderr.contains("waiting for Prometheus"), "\(c.stderr.suffix(2000))")
        let e = try #require(diverged, "no scrape saw medmaml_training_diverged 1: \(c.stderr.suffix(1000))")
        try expectRunLabel(e, of: folder.path + "/diverged", "diverged run")
    }

    @Test func distributedRunMetricsCountWorkersTrafficAndTasks() throws {
        let port = freePort()
        let c = try coordinator(["train", "--image-size", "32", "--base-channels", "4", "--meta-batch", "2", "--outer-steps", "60",
                                 "--checkpoint-every", "0", "--bind", "tcp://127.0.0.1:\(port)", "--min-workers", "1",
                                 "--checkpoint-dir", folder.path + "/dist", "--metrics-address", "127.0.0.1:0"], name: "coordinator-dist")
        let w = try ChildProcess(executable("medmaml-worker"), ["--connect", "tcp://127.0.0.1:\(port)", "--name", "w1", "--threads", "1",
                                                               "--idle-timeout", "30", "--metrics-address", "127.0.0.1:0"],
                                 name: "worker", folder: folder.path)
        let coordinatorURL = try metricsURL(c), workerURL = try metricsURL(w)
        let e = try scrape(coordinatorURL) { ($0.value("medmaml_step") ?? 0) >= 5 && ($0.value("medmaml_workers_ready") ?? 0) == 1 }
        #expect(e.value("medmaml_workers_connected") == 1)
        #expect(e.value("medmaml_workers_required") == 1)
        #expect(e.value("medmaml_workers_quarantined") == 0)
        #expect((e.value("medmaml_bytes_sent_total") ?? 0) > 0 && (e.value("medmaml_bytes_received_total") ?? 0) > 0)
        #expect(e.value("medmaml_tasks_outstanding") != nil)
        let we = try scrape(workerURL) { ($0.value("medmaml_worker_tasks_total") ?? 0) >= 4 }
        #expect(we.types["medmaml_worker_tasks_total"] == "counter")
        let busy = try #require(we.value("medmaml_worker_busy_fraction", ["thread": "0"]))
        #expect(busy > 0 && busy <= 1)
        #expect(we.value("medmaml_worker_busy_seconds_total", ["thread": "0"]).map { $0 > 0 } == true)
        #expect(we.value("medmaml_worker_threads") == 1)
        // Every metric the Grafana dashboard plots and the alerting rules watch is one a real
        // run serves (events and held-out Dice appear with their first occurrence).
        var plotted = Set<String>()
        for file in ["grafana-dashboard.json", "alerts.yml"] {
            let text = try String(contentsOfFile: repositoryRoot + "/cluster/monitoring/" + file, encoding: .utf8)
            plotted.formUnion(text.matches(of: /medmaml_[a-z_]+/).map { String($0.output) })
        }
        #expect(plotted.contains("medmaml_workers_required") && plotted.contains("medmaml_training_diverged"))
        let served = Set((e.samples + we.samples).map(\.name)).union(["medmaml_events_total", "medmaml_heldout_dice"])
        #expect(plotted.subtracting(served).isEmpty, "plotted or alerted on but not served: \(plotted.subtracting(served))")
        #expect(c.waitExit(timeout: 300) == 0, "\(c.stderr.suffix(2000))")
        #expect(w.waitExit(timeout: 60) == 0, "\(w.stderr.suffix(2000))")
        try expectRunLabel(e, of: folder.path + "/dist", "coordinator")
        try expectRunLabel(we, of: folder.path + "/dist", "worker")
    }

    @Test func aBadMetricsAddressIsAClearError() throws {
        for address in ["nowhere", "example.org:9464", "127.0.0.1:99999"] {
            let p = try coordinator(["train", "--in-process", "--outer-steps", "1", "--image-size", "32", "--base-channels", "4",
                                     "--checkpoint-dir", folder.path + "/bad", "--metrics-address", address], name: "bad-\(address)")
            #expect(p.waitExit(timeout: 60) == 64, "\(address): \(p.stderr)")
            #expect(p.stderr.contains("--metrics-address"), "\(address): \(p.stderr)")
        }
    }

    @Test func aRunFileDrivesTrainingAndItsOutputReproducesTheRun() throws {
        let file = folder.path + "/run.yaml"
        try """
            # a small run
            image-size: 32
            base-channels: 4
            meta-batch: 2
            outer-steps: 9
            cosine: true
            hold-out: ["synthetic/paired/*", "synthetic/*/xray"]
            in-process: true
            checkpoint-every: 0
            """.write(toFile: file, atomically: true, encoding: .utf8)
        // The command line overrides the file.
        let first = try coordinator(["train", "--config", file, "--outer-steps", "3", "--checkpoint-dir", folder.path + "/a"], name: "a")
        #expect(first.waitExit(timeout: 300) == 0, "\(first.stderr)")
        let hash = try #require(first.finalHash)
        let checkpoint = try Checkpoint.read(path: folder.path + "/a/checkpoint-00000003.safetensors")
        #expect(checkpoint.run.training.steps == 3 && checkpoint.run.training.optimizer.cosineSteps == 3)
        #expect(checkpoint.run.split.testPatterns == ["synthetic/paired/*", "synthetic/*/xray"])
        let written = try String(contentsOfFile: folder.path + "/a/run.yaml", encoding: .utf8)
        #expect(checkpoint.runFile == written)
        #expect(written.contains("outer-steps: 3") && written.contains("base-channels: 4") && written.contains("cosine: true"))
        // The output folder alone reproduces the run, bit for bit.
        let again = try coordinator(["train", "--config", folder.path + "/a/run.yaml", "--checkpoint-dir", folder.path + "/b"], name: "b")
        #expect(again.waitExit(timeout: 300) == 0, "\(again.stderr)")
        #expect(again.finalHash == hash)
        // --print-config prints the same effective configuration and starts nothing.
        let printed = try coordinator(["train", "--config", file, "--outer-steps", "3", "--checkpoint-dir", folder.path + "/a", "--print-config"],
                                      name: "print")
        #expect(printed.waitExit(timeout: 60) == 0)
        #expect(printed.stdout == written)
    }

    @Test func badRunFilesNameTheKey() throws {
        let cases: [(String, String)] = [
            ("outer-steps: 3\nstepz: 4\n", "2:1: unknown key 'stepz'"),
            ("meta_batch: 4\n", "did you mean 'meta-batch'"),
            ("outer-steps: [1, 2]\n", "'outer-steps' takes one value, not a list"),
            ("cosine: perhaps\n", "'cosine' is a flag"),
            ("outer-steps: many\n", "'outer-steps': The value 'many' is invalid"),
            ("- steps\n", "a mapping of option names"),
            ("outer-steps: 3\nouter-steps: 4\n", "duplicated key(s): 'outer-steps'"),
            ("outer-steps: {a: 1}\n", "not a mapping"),
            ("outer-steps: [unclosed\n", "not valid YAML"),
        ]
        for (i, (text, message)) in cases.enumerated() {
            let file = folder.path + "/bad\(i).yaml"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let p = try coordinator(["train", "--config", file, "--in-process", "--checkpoint-dir", folder.path + "/never"], name: "bad\(i)")
            #expect(p.waitExit(timeout: 60) == 64, "\(text): \(p.stderr)")
            #expect(p.stderr.contains(message) && p.stderr.contains(file), "\(text): \(p.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: folder.path + "/never"))
    }
}
