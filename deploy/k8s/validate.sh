#!/usr/bin/env bash
# Validates deploy/k8s/ offline, without a cluster: each variant renders (`kubectl kustomize`), its embedded keel.toml
# passes `keel check`, and the rules a drain depends on hold: every container has readiness and liveness probes and
# a preStop, pods run as non-root, terminationGracePeriodSeconds exceeds graceful_timeout (keel.toml's, or the pool's
# --graceful-timeout) plus the preStop sleep, and each Service selects a Deployment and names its ports.
#
#   deploy/k8s/validate.sh [DIR]     # DIR: a directory of variants (default deploy/k8s); KEEL=path to keel;
#                                    # K8S_RENDER=python uses the fallback renderer even with kubectl present
# Exits 0, or 1 with one line per problem saying what to fix.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$root/deploy/k8s}
keel=${KEEL:-$root/.build/debug/keel}
[ -x "$keel" ] || keel=$(command -v keel || true)
[ -n "$keel" ] || { echo "validate.sh: no keel binary: build it (swift build) or set KEEL" >&2; exit 2; }
# kubectl kustomize renders offline; without kubectl (not packaged in Debian 12) a minimal renderer does the two
# things these kustomizations use: resources, and a configMapGenerator from files.
render() {
    if [ "${K8S_RENDER:-}" != python ] && command -v kubectl >/dev/null; then timeout 30 kubectl kustomize "$1"; return; fi
    /usr/bin/python3 - "$1" <<'PY'
import os, sys, yaml
base = sys.argv[1]
spec = yaml.safe_load(open(os.path.join(base, "kustomization.yaml")))
docs = []
for generator in spec.get("configMapGenerator", []):
    data = {os.path.basename(f): open(os.path.join(base, f)).read() for f in generator.get("files", [])}
    docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
for resource in spec.get("resources", []):
    docs += [d for d in yaml.safe_load_all(open(os.path.join(base, resource))) if d]
print(yaml.safe_dump_all(docs, sort_keys=False))
PY
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for variant in "$dir"/*/; do
    name=$(basename "$variant")
    [ -f "$variant/kustomization.yaml" ] || continue
    if ! render "$variant" > "$work/$name.yaml" 2> "$work/$name.err"; then
        echo "$name: rendering failed: $(head -1 "$work/$name.err")"; status=1; continue
    fi
    /usr/bin/python3 - "$work/$name.yaml" "$work/$name" "$keel" "$name" <<'PY' || status=1
import re, subprocess, sys, yaml
path, prefix, keel, variant = sys.argv[1:5]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
problems = []
configs = {}
for doc in docs:
    if doc["kind"] == "ConfigMap" and "keel.toml" in doc.get("data", {}):
        toml = prefix + "-" + doc["metadata"]["name"] + ".toml"
        open(toml, "w").write(doc["data"]["keel.toml"])
        check = subprocess.run([keel, "check", "--config", toml], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            problems.append("ConfigMap %s: keel check: %s" % (doc["metadata"]["name"], (check.stderr or check.stdout).strip()))
        grace = re.search(r'^graceful_timeout\s*=\s*"(\d+)s"', doc["data"]["keel.toml"], re.M)
        configs[doc["metadata"]["name"]] = int(grace.group(1)) if grace else 30  # keel's default
deployments = [d for d in docs if d["kind"] == "Deployment"]
for deployment in deployments:
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    period = pod.get("terminationGracePeriodSeconds", 30)
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append("Deployment %s: set securityContext.runAsNonRoot: true (the image runs as user keel)" % name)
    mounted = {v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v}
    for container in pod["containers"]:
        where = "Deployment %s, container %s" % (name, container["name"])
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in container:
                problems.append("%s: add a %s" % (where, probe))
        stop = container.get("lifecycle", {}).get("preStop")
        if not stop:
            problems.append("%s: add a preStop (a short sleep) so endpoints drain before TERM" % where)
        sleep = 0
        if stop:
            command = stop.get("exec", {}).get("command", [])
            sleep = int(command[-1]) if command and command[-1].isdigit() else stop.get("sleep", {}).get("seconds", 0)
        args = container.get("args", [])
        if "--graceful-timeout" in args:
            drain = int(args[args.index("--graceful-timeout") + 1])
        else:
            drain = max([configs[m] for m in mounted if m in configs] or [30])
        if period <= drain + sleep:
            problems.append("%s: terminationGracePeriodSeconds %d must exceed graceful_timeout %d + preStop %d s"
                            % (where, period, drain, sleep))
for service in (d for d in docs if d["kind"] == "Service"):
    selector = service["spec"].get("selector", {})
    targets = [d for d in deployments if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())]
    if not targets:
        problems.append("Service %s: its selector %s matches no Deployment" % (service["metadata"]["name"], selector))
    ports = {p.get("name") for d in targets for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    for port in service["spec"]["ports"]:
        if isinstance(port.get("targetPort"), str) and port["targetPort"] not in ports:
            problems.append("Service %s: targetPort %s is no container port's name" % (service["metadata"]["name"], port["targetPort"]))
for problem in problems:
    print("%s: %s" % (variant, problem))
if not problems:
    print("%s: OK (%s)" % (variant, ", ".join("%s %s" % (d["kind"], d["metadata"]["name"]) for d in docs)))
sys.exit(1 if problems else 0)
PY
done
exit $status
