"""The DaemonSet's pod, for `podman kube play` (podman 4.3 plays Pods, not
DaemonSets): prints the ConfigMaps of packaging/kubernetes/tcpstate.yaml
and a Pod named NAME whose spec is the DaemonSet's pod template, as
written. Before that it checks what the YAML promises: no privileged
container, only the capabilities BPF, PERFMON and DAC_READ_SEARCH, every
host mount read-only, a liveness probe on /metrics, and resources.

    python3 tests/kube-pod.py packaging/kubernetes/tcpstate.yaml NAME
"""
import sys

import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = [d["kind"] for d in docs]
assert kinds == ["Namespace", "ConfigMap", "DaemonSet"], kinds
ds = docs[2]
spec = ds["spec"]["template"]["spec"]
assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
(c,) = spec["containers"]
sc = c["securityContext"]
assert sc.get("privileged") is False, sc
assert sc["allowPrivilegeEscalation"] is False, sc
assert sc["capabilities"] == {"drop": ["ALL"], "add": ["BPF", "PERFMON", "DAC_READ_SEARCH"]}, sc
mounts = {m["name"]: m for m in c["volumeMounts"]}
volumes = {v["name"]: v for v in spec["volumes"]}
assert mounts.keys() == volumes.keys(), (mounts.keys(), volumes.keys())
for m in mounts.values():
    assert m.get("readOnly") is True, m
assert c["livenessProbe"]["httpGet"]["path"] == "/metrics"
assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"]
assert volumes["slack"]["secret"]["optional"] is True

pod = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": dict(ds["spec"]["template"]["metadata"], name=sys.argv[2]),
    "spec": spec,
}
for d in docs:
    if d["kind"] == "ConfigMap":
        d["metadata"].pop("namespace", None)
print(yaml.safe_dump_all([d for d in docs if d["kind"] == "ConfigMap"] + [pod]))
