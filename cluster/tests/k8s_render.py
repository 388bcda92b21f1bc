"""Renders cluster/k8s as `kubectl kustomize` does, for the tests, and turns its Jobs into the
Pods their controllers would create, for `podman kube play` (which plays Pods, not Jobs).

Only what cluster/k8s's kustomization uses is implemented (resources, namespace, images,
secretGenerator with disableNameSuffixHash); anything else is an error rather than a silent
difference from kustomize. check_k8s.py compares the result with `kubectl kustomize` where
kubectl is installed.

  k8s_render.py render FOLDER [--image NAME=REFERENCE]
  k8s_render.py pods FOLDER OUT --image NAME=REFERENCE --secrets DIR --suffix S --workers N
"""
import argparse
import base64
import copy
import os
import sys

import yaml

SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "images", "secretGenerator", "generatorOptions"}
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass"}


class RenderError(Exception):
    pass


def split_image(reference):
    """(name, tag or None) of an image reference without a digest."""
    if "@" in reference:
        raise RenderError(f"image {reference}: digests are not supported here")
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1:]
    return reference, None


def pod_specs(obj):
    """The pod specs inside an object (a Pod's, or a controller's template)."""
    if obj.get("kind") == "Pod":
        return [obj["spec"]]
    template = obj.get("spec", {}).get("template")
    return [template["spec"]] if template else []


def render(folder, image_overrides=None):
    """The objects `kubectl kustomize folder` prints, in the order of the resources."""
    with open(os.path.join(folder, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise RenderError(f"kustomization fields this renderer does not implement: {sorted(unknown)}")
    if kustomization.get("generatorOptions", {}) not in ({}, {"disableNameSuffixHash": True}):
        raise RenderError("only generatorOptions.disableNameSuffixHash: true is implemented (kustomize's name hashes are not)")
    objects = []
    for name in kustomization.get("resources", []):
        with open(os.path.join(folder, name)) as f:
            objects += [doc for doc in yaml.safe_load_all(f) if doc]
    for generator in kustomization.get("secretGenerator", []):
        if set(generator) - {"name", "files"}:
            raise RenderError(f"secretGenerator fields not implemented: {sorted(set(generator) - {'name', 'files'})}")
        data = {}
        for entry in generator["files"]:
            key, _, path = entry.rpartition("=") if "=" in entry else (os.path.basename(entry), None, entry)
            with open(os.path.join(folder, path), "rb") as f:
                data[key] = base64.b64encode(f.read()).decode()
        objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": generator["name"]}, "type": "Opaque", "data": data})
    namespace = kustomization.get("namespace")
    images = {i["name"]: i for i in kustomization.get("images", [])}
    for name, reference in (image_overrides or {}).items():
        new_name, tag = split_image(reference)
        images[name] = {"name": name, "newName": new_name, "newTag": tag}
    for obj in objects:
        if namespace and obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace
        for spec in pod_specs(obj):
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                name, tag = split_image(container["image"])
                rule = images.get(name)
                if rule:
                    container["image"] = rule.get("newName", name) + (":" + rule["newTag"] if rule.get("newTag") else (":" + tag if tag else ""))
    return objects


def secret_files(secret, volume):
    """{path: (bytes, mode)} of a Secret volume, as the kubelet writes it (items, modes)."""
    source = volume["secret"]
    default = source.get("defaultMode", 0o644)
    data = {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}
    items = source.get("items") or [{"key": k, "path": k} for k in data]
    files = {}
    for item in items:
        if item["key"] not in data:
            raise RenderError(f"secret {secret['metadata']['name']} has no key {item['key']}")
        files[item["path"]] = (data[item["key"]], item.get("mode", default))
    return files


def pods(folder, out, image, secrets_dir, suffix, workers):
    """Writes the Pods the Jobs' controllers would create (coordinator.yaml, worker-N.yaml) and
    the ConfigMaps (configmaps.yaml) for `podman kube play`, with what podman 4.3 cannot play
    replaced by what the kubelet would have made of it:
      - Secret volumes: podman 4.3 ignores their items and modes and mounts the values still
        base64-encoded, so each becomes a hostPath folder laid out as the kubelet lays out a
        Secret volume: the items' files, owned by root, group the pod's fsGroup with group read
        added (the kubelet's ownership rule), mode defaultMode otherwise;
      - claims and ConfigMaps get `suffix`, emptyDir volumes the pod's name and `suffix`:
        podman makes named volumes of all three (of an emptyDir under the volume's own name),
        global on the machine, where an emptyDir belongs to its pod alone; runs of the test
        must never share one;
      - the coordinator's pod is named after its headless Service, since podman's DNS knows
        pods by name: the name workers connect to resolves as the Service's would;
      - container ports are dropped (their names resolved in the probes first): podman 4.3
        publishes every containerPort on the host, where Kubernetes publishes only hostPorts,
        so two workers' metrics ports would collide there.
    Run as root (the files are chowned)."""
    objects = render(folder, {"medmaml": image})
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    secrets = by_kind.get("Secret", {})
    services = by_kind.get("Service", {})
    os.makedirs(out, exist_ok=True)

    def pod(job, name):
        template = copy.deepcopy(job["spec"]["template"])
        spec = template["spec"]
        group = spec.get("securityContext", {}).get("fsGroup")
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                target = os.path.join(secrets_dir, name, volume["name"])
                os.makedirs(target, exist_ok=True)
                for path, (content, mode) in secret_files(secrets[volume["secret"]["secretName"]], volume).items():
                    file = os.path.join(target, path)
                    with open(file, "wb") as f:
                        f.write(content)
                    os.chown(file, 0, group if group is not None else 0)
                    os.chmod(file, mode | (0o440 if group is not None else 0))
                del volume["secret"]
                volume["hostPath"] = {"path": target, "type": "Directory"}
            if "persistentVolumeClaim" in volume:
                volume["persistentVolumeClaim"]["claimName"] += suffix
            if "configMap" in volume:
                volume["configMap"]["name"] += suffix
            if "emptyDir" in volume:
                for container in spec["containers"]:
                    for mount in container.get("volumeMounts", []):
                        if mount["name"] == volume["name"]:
                            mount["name"] += "-" + name + suffix
                volume["name"] += "-" + name + suffix
        for container in spec["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container.pop("ports", []) if "name" in p}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                get = container.get(probe, {}).get("httpGet")
                if get:
                    get["port"] = ports.get(get["port"], get["port"])
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": template["metadata"].get("labels", {}),
                             "annotations": template["metadata"].get("annotations", {})},
                "spec": spec}

    jobs = by_kind.get("Job", {})
    coordinator = jobs["medmaml-coordinator"]
    labels = coordinator["spec"]["template"]["metadata"]["labels"]
    service = next(n for n, s in services.items() if all(labels.get(k) == v for k, v in s["spec"]["selector"].items()))
    written = {"coordinator": pod(coordinator, service)}
    for i in range(workers):
        written[f"worker-{i}"] = pod(jobs["medmaml-workers"], f"medmaml-workers-{i}")
    for name, doc in written.items():
        with open(os.path.join(out, name + ".yaml"), "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
    configmaps = copy.deepcopy(list(by_kind.get("ConfigMap", {}).values()))
    for configmap in configmaps:
        configmap["metadata"]["name"] += suffix
    with open(os.path.join(out, "configmaps.yaml"), "w") as f:
        yaml.safe_dump_all(configmaps, f, sort_keys=False)
    return written


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render")
    r.add_argument("folder")
    r.add_argument("--image", action="append", default=[])
    p = sub.add_parser("pods")
    p.add_argument("folder")
    p.add_argument("out")
    p.add_argument("--image", required=True)
    p.add_argument("--secrets", required=True)
    p.add_argument("--suffix", default="")
    p.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    try:
        if args.command == "render":
            overrides = dict(i.split("=", 1) for i in args.image)
            yaml.safe_dump_all(render(args.folder, overrides), sys.stdout, sort_keys=False)
        else:
            pods(args.folder, args.out, args.image.split("=", 1)[-1], args.secrets, args.suffix, args.workers)
    except (RenderError, OSError, KeyError, yaml.YAMLError) as error:
        print(f"k8s_render: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
