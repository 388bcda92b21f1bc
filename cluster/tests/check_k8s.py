"""Checks the Kubernetes manifests and the container image definition as far as is honest
without a cluster: every file parses, every reference between objects resolves, and every
command and flag they use exists in the binaries' --help. Prints what it checked.
Usage: check_k8s.py REPO BIN_DIR
"""
import os
import re
import subprocess
import sys

import yaml

repo, bindir = sys.argv[1], sys.argv[2]
k8s = os.path.join(repo, "cluster", "k8s")
errors, checks = [], []


def check(condition, what):
    (checks if condition else errors).append(what)


kustomization = yaml.safe_load(open(os.path.join(k8s, "kustomization.yaml")))
objects = []
for name in kustomization["resources"]:
    path = os.path.join(k8s, name)
    check(os.path.exists(path), f"kustomization resource {name} exists")
    for doc in yaml.safe_load_all(open(path)):
        if doc:
            check("apiVersion" in doc and "kind" in doc and "name" in doc.get("metadata", {}), f"{name}: {doc.get('kind')} is well formed")
            objects.append(doc)
by_kind = {}
for o in objects:
    by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
secrets = {g["name"] for g in kustomization.get("secretGenerator", [])} | set(by_kind.get("Secret", {}))
namespace = kustomization["namespace"]
for o in objects:
    if o["kind"] != "Namespace":
        check(o["metadata"].get("namespace") == namespace, f"{o['kind']}/{o['metadata']['name']} is in namespace {namespace}")
check(namespace in by_kind.get("Namespace", {}), f"namespace {namespace} is defined")


def help_flags(binary, *sub):
    out = subprocess.run([os.path.join(bindir, binary), *sub, "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"(--[a-z0-9-]+)", out))


coordinator_flags = help_flags("medmaml-coordinator", "train")
worker_flags = help_flags("medmaml-worker")
configmaps = by_kind.get("ConfigMap", {})
services = by_kind.get("Service", {})
claims = by_kind.get("PersistentVolumeClaim", {})

for kind in ("StatefulSet", "Deployment"):
    for name, o in by_kind.get(kind, {}).items():
        spec = o["spec"]
        labels = spec["template"]["metadata"]["labels"]
        check(all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()), f"{kind}/{name}: selector matches its pod labels")
        if kind == "StatefulSet":
            svc = services.get(spec["serviceName"])
            check(svc is not None, f"StatefulSet/{name}: serviceName {spec['serviceName']} exists")
            if svc:
                check(svc["spec"].get("clusterIP") == "None", f"Service/{svc['metadata']['name']} is headless")
                check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), f"Service/{svc['metadata']['name']} selects {name}'s pods")
        volumes = {v["name"]: v for v in spec["template"]["spec"].get("volumes", [])}
        for v in volumes.values():
            if "secret" in v:
                check(v["secret"]["secretName"] in secrets, f"{kind}/{name}: secret {v['secret']['secretName']} is defined")
            if "persistentVolumeClaim" in v:
                check(v["persistentVolumeClaim"]["claimName"] in claims, f"{kind}/{name}: claim {v['persistentVolumeClaim']['claimName']} is defined")
        for c in spec["template"]["spec"]["containers"]:
            for m in c.get("volumeMounts", []):
                check(m["name"] in volumes, f"{kind}/{name}: mount {m['name']} has a volume")
            for ref in c.get("envFrom", []):
                if "configMapRef" in ref:
                    check(ref["configMapRef"]["name"] in configmaps, f"{kind}/{name}: config map {ref['configMapRef']['name']} is defined")
            mounted = {}
            for m in c.get("volumeMounts", []):
                v = volumes.get(m["name"], {})
                if "configMap" in v:
                    cm = configmaps.get(v["configMap"]["name"])
                    check(cm is not None, f"{kind}/{name}: config map {v['configMap']['name']} is defined")
                    for item in v["configMap"].get("items", []):
                        check(cm is not None and item["key"] in cm.get("data", {}), f"{kind}/{name}: config map key {item['key']} exists")
                        if cm is not None and item["key"] in cm.get("data", {}):
                            mounted[m["mountPath"].rstrip("/") + "/" + item["path"]] = cm["data"][item["key"]]
            ports = {p["containerPort"] for p in c.get("ports", [])}
            annotations = spec["template"]["metadata"].get("annotations", {})
            if annotations.get("prometheus.io/scrape") == "true":
                check(int(annotations.get("prometheus.io/port", 0)) in ports, f"{kind}/{name}: the scraped port is a container port")
            res = c.get("resources", {}).get("requests", {})
            check("cpu" in res and "memory" in res, f"{kind}/{name}: requests cpu and memory")
            script = " ".join(c.get("args", []))
            env = {}
            for ref in c.get("envFrom", []):
                env.update(configmaps.get(ref.get("configMapRef", {}).get("name"), {}).get("data", {}))
            for var, value in env.items():
                script = script.replace("$" + var, value)
            for binary, flags, sub in (("medmaml-coordinator", coordinator_flags, "train"), ("medmaml-worker", worker_flags, None)):
                m = re.search(re.escape(binary) + (r"\s+" + sub if sub else "") + r"((?:\s+[^&;|]+)*)", script)
                if not m:
                    continue
                for flag in re.findall(r"(--[a-z0-9-]+)", m.group(1)):
                    check(flag in flags, f"{kind}/{name}: {binary}{' ' + sub if sub else ''} accepts {flag}")
                metrics = re.search(r"--metrics-address\s+\S+:(\d+)", m.group(1))
                if metrics:
                    check(int(metrics.group(1)) in ports, f"{kind}/{name}: the metrics port {metrics.group(1)} is a container port")
                config = re.search(r"--config\s+(\S+)", m.group(1))
                if config:
                    text = mounted.get(config.group(1))
                    check(text is not None, f"{kind}/{name}: the run file {config.group(1)} is mounted from a config map")
                    if text is not None:
                        import tempfile
                        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
                            f.write(text)
                            f.flush()
                            r = subprocess.run([os.path.join(bindir, binary), sub, "--config", f.name, "--print-config"],
                                               capture_output=True, text=True)
                        check(r.returncode == 0, f"{kind}/{name}: {binary} {sub} accepts the run file {config.group(1)} {r.stderr.strip()[:200]}")
                for key in set(re.findall(r"\s/keys/([a-z]+\.(?:key|pub))", script)):
                    gen = [g for g in kustomization.get("secretGenerator", []) if g["name"] in {v.get("secret", {}).get("secretName") for v in volumes.values()}]
                    check(any(any(f.endswith("/" + key) for f in g["files"]) for g in gen), f"{kind}/{name}: key file {key} is in the secret")
            if "medmaml-worker" in script:
                target = re.search(r"--connect tcp://([^:\s]+):(\d+)", script)
                check(target is not None, f"{kind}/{name}: worker connects somewhere")
                if target:
                    host, port = target.groups()
                    sts = by_kind.get("StatefulSet", {})
                    expected = {f"{n}-0.{s['spec']['serviceName']}" for n, s in sts.items()}
                    check(host in expected, f"{kind}/{name}: --connect host {host} is the coordinator pod's stable name")
                    check(any(str(p["port"]) == port for svc in services.values() for p in svc["spec"]["ports"]), f"{kind}/{name}: port {port} is served")

dockerfile = open(os.path.join(repo, "cluster", "Dockerfile")).read()
args = dict(re.findall(r"^ARG\s+([A-Z_]+)=(\S+)", dockerfile, re.M))
stages = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
check("swift" in args.get("SWIFT_IMAGE", "") and "slim" in args.get("RUNTIME_IMAGE", ""),
      "Dockerfile: the base images are build arguments, by default a Swift toolchain image and slim Debian")
check(stages[0] == "${SWIFT_IMAGE}" and stages[-1] == "${RUNTIME_IMAGE}" and "${BINARIES}" in stages,
      "Dockerfile: a build stage, a prebuilt-binaries stage chosen by BINARIES, and the runtime stage")
runtime = dockerfile.split("FROM ${RUNTIME_IMAGE}", 1)[1]
for lib in ["libopenblas0-pthread", "libdnnl2", "libzmq5", "libsodium23", "libpng16-16", "zlib1g", "libgomp1", "libcurl4"]:
    check(lib in runtime, f"Dockerfile runtime stage installs {lib}")
    if subprocess.run(["apt-cache", "show", lib], capture_output=True).returncode != 0:
        errors.append(f"{lib} is not a Debian package here")

for c in checks:
    print("ok  ", c)
for e in errors:
    print("FAIL", e)
print(f"{len(checks)} checks passed, {len(errors)} failed")
sys.exit(1 if errors else 0)
