"""Checks the Kubernetes manifests and the container image definition as far as is honest
without a cluster. The manifests are rendered as `kubectl kustomize cluster/k8s` renders them
(k8s_render.py, compared with kubectl's own output where kubectl is installed), with
throw-away keys made by the binaries, then:
  - with --schemas VERSION...: every object is valid, strictly (no unknown fields), against
    the OpenAPI schemas of those Kubernetes versions (kubernetes-validate, from PyPI);
  - every reference between objects resolves (Service selectors and ports, ConfigMap, Secret
    and claim names and keys, mounted paths, probed and scraped ports);
  - the pods meet the "restricted" Pod Security Standard the namespace enforces, commands are
    plain exec arrays of the image's binaries, keys come from the Secret with the modes the
    binaries accept and belong together;
  - the Jobs are batch workloads as cluster/k8s/README.md describes them;
  - every command, flag and the run file are accepted by the binaries.
Prints what it checked. Usage: check_k8s.py REPO BIN_DIR [--schemas VERSION...]
"""
import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8s_render  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("repo")
parser.add_argument("bindir")
parser.add_argument("--schemas", nargs="+", default=[], metavar="VERSION")
args = parser.parse_args()
repo, bindir = args.repo, args.bindir
k8s = os.path.join(repo, "cluster", "k8s")
errors, checks = [], []


def check(condition, what):
    (checks if condition else errors).append(what)


# Render a copy with keys made by the binaries (the real keys are the user's, git-ignored).
work = tempfile.mkdtemp(prefix="medmaml-k8s-")
folder = os.path.join(work, "k8s")
shutil.copytree(k8s, folder, ignore=shutil.ignore_patterns("keys"))
os.makedirs(os.path.join(folder, "keys"))
for name in ("coordinator", "worker"):
    subprocess.run([os.path.join(bindir, "medmaml-coordinator"), "keygen", "--out", os.path.join(folder, "keys", name)],
                   check=True, capture_output=True)
kustomization = yaml.safe_load(open(os.path.join(k8s, "kustomization.yaml")))
objects = k8s_render.render(folder)


def normalized(docs):
    """Objects by (kind, name), Secret data decoded (kustomize wraps base64 lines)."""
    out = {}
    for d in docs:
        d = dict(d)
        if d["kind"] == "Secret":
            d["data"] = {k: base64.b64decode(v) for k, v in d.get("data", {}).items()}
        out[(d["kind"], d["metadata"]["name"])] = d
    return out


kubectl = shutil.which("kubectl")
if kubectl:
    r = subprocess.run([kubectl, "kustomize", folder], capture_output=True, text=True)
    check(r.returncode == 0, f"kubectl kustomize renders cluster/k8s {r.stderr.strip()[:200]}")
    if r.returncode == 0:
        theirs = normalized(d for d in yaml.safe_load_all(r.stdout) if d)
        ours = normalized(objects)
        check(theirs == ours, f"k8s_render.py renders what kubectl kustomize does (differs on {sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))})")
else:
    print("note: no kubectl here; the renderer is not compared with kubectl kustomize")

# Schemas.
if args.schemas:
    import kubernetes_validate
    for version in args.schemas:
        for o in objects:
            what = f"{o['kind']}/{o['metadata']['name']}"
            try:
                kubernetes_validate.validate(o, version, strict=True)
                check(True, f"{what} is valid against the Kubernetes {version} schema (strict)")
            except kubernetes_validate.ValidationError as e:
                check(False, f"{what} against Kubernetes {version}: {e.message} at {'/'.join(map(str, e.path))}")
            except Exception as e:  # an unknown kind or version is a failure too
                check(False, f"{what} against Kubernetes {version}: {type(e).__name__}: {e}")

by_kind = {}
for o in objects:
    check("apiVersion" in o and "kind" in o and "name" in o.get("metadata", {}), f"{o.get('kind')} is well formed")
    by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
namespace = kustomization["namespace"]
for o in objects:
    if o["kind"] != "Namespace":
        check(o["metadata"].get("namespace") == namespace, f"{o['kind']}/{o['metadata']['name']} is in namespace {namespace}")
ns = by_kind.get("Namespace", {}).get(namespace)
check(ns is not None, f"namespace {namespace} is defined")
check(ns is not None and ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "restricted",
      f"namespace {namespace} enforces the restricted Pod Security Standard")

# Images: pinned by kustomize, never latest.
for name in kustomization["resources"]:
    text = open(os.path.join(k8s, name)).read()
    check(":latest" not in text, f"{name} names no :latest image")
for rule in kustomization.get("images", []):
    check(rule.get("newTag") not in (None, "", "latest"), f"kustomization pins image {rule['name']} to a tag ({rule.get('newTag')})")


def help_flags(binary, *sub):
    out = subprocess.run([os.path.join(bindir, binary), *sub, "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"(--[a-z0-9-]+)", out))


coordinator_flags = help_flags("medmaml-coordinator", "train")
worker_flags = help_flags("medmaml-worker")
configmaps = by_kind.get("ConfigMap", {})
services = by_kind.get("Service", {})
claims = by_kind.get("PersistentVolumeClaim", {})
secrets = by_kind.get("Secret", {})
jobs = by_kind.get("Job", {})
check(set(jobs) == {"medmaml-coordinator", "medmaml-workers"}, f"the coordinator and the workers are Jobs ({sorted(jobs)})")
check(not by_kind.get("Deployment") and not by_kind.get("StatefulSet"), "no Deployment or StatefulSet (a run is a batch workload)")

dockerfile = open(os.path.join(repo, "cluster", "Dockerfile")).read()
installed = re.search(r"COPY --from=binaries /out/ (\S+)", dockerfile)
bin_dir = installed.group(1).rstrip("/") if installed else "?"


def option(argv, flag):
    """The value after `flag` in an argument list, if any."""
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else None


def public_key(text):
    m = re.search(r'public-key\s*=\s*"([^"]+)"', text)
    return m.group(1) if m else None


containers = {}   # Job name -> (pod spec, container, mounts: path -> (volume, item path or None))
for name, job in jobs.items():
    spec = job["spec"]
    template = spec["template"]
    pod = template["spec"]
    labels = template["metadata"].get("labels", {})
    check(pod.get("restartPolicy") == "OnFailure", f"Job/{name}: restartPolicy OnFailure (crashes restart in the pod)")
    check(isinstance(spec.get("backoffLimit"), int), f"Job/{name}: backoffLimit bounds the restarts")
    sc = pod.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 10001 and sc.get("runAsGroup") == 10001,
          f"Job/{name}: runs as non-root user and group 10001 (the image's)")
    check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"Job/{name}: seccomp profile RuntimeDefault")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    allowed = {"configMap", "secret", "persistentVolumeClaim", "emptyDir", "projected", "downwardAPI", "ephemeral", "csi"}
    for v in volumes.values():
        kinds = set(v) - {"name"}
        check(kinds <= allowed, f"Job/{name}: volume {v['name']} is of a kind the restricted profile allows ({sorted(kinds)})")
        if "secret" in v:
            s = secrets.get(v["secret"]["secretName"])
            check(s is not None, f"Job/{name}: secret {v['secret']['secretName']} is defined")
            mode = v["secret"].get("defaultMode")
            check(mode == 0o400 or (mode == 0o440 and sc.get("fsGroup") == sc.get("runAsGroup")),
                  f"Job/{name}: secret volume {v['name']} mode {oct(mode or 0o644)} (0400, or 0440 with the pod's group as fsGroup)")
            for item in v["secret"].get("items", []):
                check(s is not None and item["key"] in s.get("data", {}), f"Job/{name}: secret key {item['key']} exists")
        if "persistentVolumeClaim" in v:
            check(v["persistentVolumeClaim"]["claimName"] in claims, f"Job/{name}: claim {v['persistentVolumeClaim']['claimName']} is defined")
        if "configMap" in v:
            cm = configmaps.get(v["configMap"]["name"])
            check(cm is not None, f"Job/{name}: config map {v['configMap']['name']} is defined")
            for item in v["configMap"].get("items", []):
                check(cm is not None and item["key"] in cm.get("data", {}), f"Job/{name}: config map key {item['key']} exists")
    check(len(pod["containers"]) == 1, f"Job/{name}: one container")
    c = pod["containers"][0]
    csc = c.get("securityContext", {})
    check(csc.get("allowPrivilegeEscalation") is False and csc.get("readOnlyRootFilesystem") is True
          and csc.get("capabilities", {}).get("drop") == ["ALL"] and not csc.get("capabilities", {}).get("add")
          and not csc.get("privileged"),
          f"Job/{name}: no privilege escalation, read-only root filesystem, every capability dropped")
    command = c.get("command", [])
    argv = [str(a) for a in c.get("args", [])]
    shells = {"sh", "bash", "dash", "/bin/sh", "/bin/bash", "/usr/bin/env"}
    check(len(command) == 1 and os.path.basename(command[0]) in ("medmaml-coordinator", "medmaml-worker")
          and not shells & set(command + argv) and "-c" not in argv,
          f"Job/{name}: the command is a plain exec array of a MedMAML binary, no shell ({command})")
    check(command[:1] and os.path.dirname(command[0]) == bin_dir, f"Job/{name}: {command[0] if command else '?'} is where the Dockerfile installs it ({bin_dir})")
    check(not any("$" in a for a in argv), f"Job/{name}: no variables for a shell to expand in the arguments")
    res = c.get("resources", {}).get("requests", {})
    check("cpu" in res and "memory" in res, f"Job/{name}: requests cpu and memory")
    mounts = {}
    for m in c.get("volumeMounts", []):
        check(m["name"] in volumes, f"Job/{name}: mount {m['name']} has a volume")
        v = volumes.get(m["name"], {})
        mounts[m["mountPath"].rstrip("/")] = (m, v)
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    annotations = template["metadata"].get("annotations", {})
    metrics = option(argv, "--metrics-address")
    metrics_port = int(metrics.rsplit(":", 1)[1]) if metrics else None
    check(metrics_port in ports.values(), f"Job/{name}: the metrics port {metrics_port} is a container port")
    if annotations.get("prometheus.io/scrape") == "true":
        check(int(annotations.get("prometheus.io/port", 0)) == metrics_port, f"Job/{name}: Prometheus scrapes the metrics port")
    probe = c.get("readinessProbe", {}).get("httpGet", {})
    probed = ports.get(probe.get("port"), probe.get("port"))
    check(probe.get("path") == "/metrics" and probed == metrics_port, f"Job/{name}: the readiness probe GETs /metrics on the metrics port")

    def mounted_file(path, mounts=mounts):
        """(bytes, mode) of a file a Secret or ConfigMap volume puts at `path`, if any."""
        for root, (m, v) in mounts.items():
            if path.startswith(root + "/"):
                rel = path[len(root) + 1:]
                if "secret" in v:
                    files = k8s_render.secret_files(secrets[v["secret"]["secretName"]], v)
                    return files.get(rel)
                if "configMap" in v:
                    cm = configmaps.get(v["configMap"]["name"], {})
                    items = {i["path"]: i["key"] for i in v["configMap"].get("items", [])} or {k: k for k in cm.get("data", {})}
                    return (cm.get("data", {})[items[rel]].encode(), 0o644) if rel in items else None
        return None

    binary = os.path.basename(command[0]) if command else ""
    flags = coordinator_flags if binary == "medmaml-coordinator" else worker_flags
    subcommand = argv[0] if binary == "medmaml-coordinator" and argv else None
    for flag in [a for a in argv if a.startswith("--")]:
        check(flag in flags, f"Job/{name}: {binary}{' ' + subcommand if subcommand else ''} accepts {flag}")
    for flag in ("--secret-key", "--coordinator-key", "--authorized-keys"):
        path = option(argv, flag)
        if path:
            check(mounted_file(path) is not None, f"Job/{name}: {flag} {path} is a file of a mounted Secret")
    containers[name] = (pod, c, argv, mounted_file, ports, mounts)
    data = mounts.get("/data")
    check(data is not None and data[0].get("readOnly") is True and "persistentVolumeClaim" in data[1]
          and data[1]["persistentVolumeClaim"].get("readOnly") is True,
          f"Job/{name}: file datasets come from a claim mounted read-only at /data")

coordinator = containers.get("medmaml-coordinator")
worker = containers.get("medmaml-workers")
if coordinator and worker:
    cpod, cc, cargv, cfile, cports, cmounts = coordinator
    wpod, wc, wargv, wfile, wports, wmounts = worker
    check(cargv[:1] == ["train"], "the coordinator runs train")
    check("--resume" in cargv, "the coordinator resumes from its newest checkpoint on every start")
    folder_path = option(cargv, "--checkpoint-dir")
    m = cmounts.get((folder_path or "").rstrip("/"))
    check(m is not None and "persistentVolumeClaim" in m[1] and not m[0].get("readOnly"),
          f"the coordinator's --checkpoint-dir {folder_path} is a writable claim (it outlives the pod)")
    check((option(cargv, "--metrics") or "").startswith((folder_path or "?") + "/"), "the coordinator's metrics.jsonl is on the checkpoint claim")
    bind = option(cargv, "--bind") or ""
    bind_port = int(bind.rsplit(":", 1)[1]) if ":" in bind else None
    check(bind_port in cports.values(), f"the coordinator's endpoint port {bind_port} is a container port")
    # The keys belong together: the coordinator accepts the workers' key, the workers know the
    # coordinator's.
    ckey, wkey = cfile(option(cargv, "--secret-key") or "?"), wfile(option(wargv, "--secret-key") or "?")
    authorized, cpub = cfile(option(cargv, "--authorized-keys") or "?"), wfile(option(wargv, "--coordinator-key") or "?")
    if all((ckey, wkey, authorized, cpub)):
        check(public_key(wkey[0].decode()) == public_key(authorized[0].decode()), "the coordinator authorizes the workers' public key")
        check(public_key(ckey[0].decode()) == public_key(cpub[0].decode()), "the workers know the coordinator's public key")
        for what, (content, mode), pod in (("coordinator", ckey, cpod), ("worker", wkey, wpod)):
            group = pod.get("securityContext", {}).get("fsGroup")
            effective = mode | (0o440 if group is not None else 0)
            # The binaries' rule for a secret key owned by root (the kubelet's files are):
            # nothing for others, group read at most.
            check(effective & 0o037 == 0 and (group is None or effective & 0o040),
                  f"the {what}'s secret key file (root:{group}, {oct(effective)}) is one the binary accepts and can read")
        check(b"secret-key" not in authorized[0] and b"secret-key" not in cpub[0], "no pod gets another's secret key")
    else:
        check(False, "the key files of both Jobs are mounted")
    # The workers reach the coordinator through the headless Service.
    target = re.match(r"tcp://([^:]+):(\d+)$", option(wargv, "--connect") or "")
    check(target is not None, "the workers connect to tcp://HOST:PORT")
    clabels = jobs["medmaml-coordinator"]["spec"]["template"]["metadata"]["labels"]
    if target:
        host, port = target.group(1), int(target.group(2))
        svc = services.get(host)
        check(svc is not None, f"--connect host {host} is a Service in the namespace")
        if svc:
            check(svc["spec"].get("clusterIP") == "None", f"Service/{host} is headless (a stable name for the coordinator's pod)")
            check(all(clabels.get(k) == v for k, v in svc["spec"]["selector"].items()), f"Service/{host} selects the coordinator's pod")
            sp = next((p for p in svc["spec"]["ports"] if p["port"] == port), None)
            check(sp is not None and cports.get(sp["targetPort"], sp["targetPort"]) == bind_port,
                  f"Service/{host} port {port} leads to the coordinator's endpoint")
            for p in svc["spec"]["ports"]:
                check(cports.get(p["targetPort"], p["targetPort"]) in cports.values(), f"Service/{host} port {p['name']} targets a container port")
    wspec = jobs["medmaml-workers"]["spec"]
    check("completions" not in wspec and isinstance(wspec.get("parallelism"), int),
          "the workers Job is a work queue (parallelism, no completion count): complete once they exit 0")
    check(str(wspec.get("parallelism")) == option(cargv, "--min-workers"), "the coordinator waits for as many workers as the Job runs")
    check(option(wargv, "--threads") == str(wc["resources"]["requests"]["cpu"]), "each worker runs one compute thread per requested CPU")
    check(option(wargv, "--data-root") == "/data", "the workers find file datasets by name under /data")
    idle = option(wargv, "--idle-timeout")
    check(idle is not None and float(idle) > 0, "a worker started after the run's end exits 0 after --idle-timeout")
    # The run file: mounted, accepted, and its dataset (if a path) on the data volume.
    config = option(cargv, "--config")
    text = cfile(config or "?")
    check(text is not None, f"the run file {config} is mounted from a config map")
    if text is not None:
        run = yaml.safe_load(text[0])
        dataset = str(run.get("dataset", "synthetic"))
        check(dataset.startswith("synthetic") or dataset.startswith("/data/"), f"the run file's dataset ({dataset}) is built in or on /data")
        with tempfile.NamedTemporaryFile("wb", suffix=".yaml") as f:
            f.write(text[0])
            f.flush()
            r = subprocess.run([os.path.join(bindir, "medmaml-coordinator"), "train", "--config", f.name, "--print-config"],
                               capture_output=True, text=True)
        check(r.returncode == 0, f"medmaml-coordinator train accepts the run file {config} {r.stderr.strip()[:200]}")

gitignore = open(os.path.join(repo, ".gitignore")).read()
check("cluster/k8s/keys/" in gitignore, "cluster/k8s/keys/ is git-ignored")
dockerignore = open(os.path.join(repo, ".dockerignore")).read().split("\n")
check("**/*.key" in dockerignore, ".dockerignore keeps every *.key out of image builds")

args_ = dict(re.findall(r"^ARG\s+([A-Z_]+)=(\S*)", dockerfile, re.M))
stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, re.M)
check("swift" in args_.get("SWIFT_IMAGE", "") and "slim" in args_.get("RUNTIME_IMAGE", ""),
      "Dockerfile: the base images are build arguments, by default a Swift toolchain image and slim Debian")
names = {alias: base for base, alias in stages}
check(names.get("build") == "${SWIFT_IMAGE}" and names.get("sources") == "scratch" and names.get("binaries") == "${BINARIES}"
      and stages[-1][0] == "${RUNTIME_IMAGE}",
      "Dockerfile: a sources stage, a build stage, a prebuilt-binaries stage chosen by BINARIES, and the runtime stage")
runtime = dockerfile.split("FROM ${RUNTIME_IMAGE}", 1)[1]
for label in ("title", "description", "source", "revision", "version", "licenses"):
    check(f"org.opencontainers.image.{label}=" in runtime, f"Dockerfile: the image is labelled org.opencontainers.image.{label}")
check(re.search(r"^USER 10001", runtime, re.M) is not None, "Dockerfile: the image runs as user 10001")
for lib in ["libopenblas0-pthread", "libdnnl2", "libzmq5", "libsodium23", "libpng16-16", "zlib1g", "libgomp1", "libcurl4"]:
    check(lib in runtime, f"Dockerfile runtime stage installs {lib}")
    if shutil.which("apt-cache") and subprocess.run(["apt-cache", "show", lib], capture_output=True).returncode != 0:
        errors.append(f"{lib} is not a Debian package here")

shutil.rmtree(work)
for c in checks:
    print("ok  ", c)
for e in errors:
    print("FAIL", e)
print(f"{len(checks)} checks passed, {len(errors)} failed")
sys.exit(1 if errors else 0)
