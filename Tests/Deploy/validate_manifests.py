#!/usr/bin/env python3
"""Validates Ambit's Kubernetes manifests.

    validate_manifests.py              every YAML file under deploy/ (recursively)
    validate_manifests.py PATH ...     those files (a directory: as deploy/) instead; "-" reads standard input

For every object:
  * a Kubernetes built-in kind (core, apps, rbac, policy, ... groups) is validated with
    kubernetes-validate against the OpenAPI schema of KUBERNETES_VERSION in strict mode, so an
    unknown or misspelt field is an error; a built-in group with a kind or version that release
    does not serve is an error too;
  * then a few rules the API server enforces that no schema expresses (selectors matching the
    template, volume mounts naming volumes, enumerations, port names, RBAC references,
    allowPrivilegeEscalation with CAP_SYS_ADMIN, ...);
  * a custom resource (Gateway, HTTPRoute, AuthorizationPolicy, ...) has no built-in schema: it
    is checked only for its metadata, an apiVersion Ambit reads and, for a Gateway, the required
    fields, and reported as skipped.
Each kustomization.yaml must list exactly the YAML files of its directory (besides itself), and
everything it names must exist; in a directory tree every directory of YAML files must have one.

Exit status: 0 when everything is valid, 1 when anything is not (each problem on stderr as
"file:line: Kind namespace/name: field: problem"), 2 when the validator cannot run (missing
package, unsupported version, unreadable input).

Needs kubernetes-validate (pinned in requirements.txt); scripts/setup.sh installs it into
<repo>/.build/python-deps, which this script adds to its import path by itself.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

# The Kubernetes release the manifests must be valid for. The newest one the pinned
# kubernetes-validate (requirements.txt) carries schemas for; raise both together.
KUBERNETES_VERSION = "1.37.0"

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PYTHON_DEPS = REPO / ".build" / "python-deps"

if PYTHON_DEPS.is_dir() and str(PYTHON_DEPS) not in sys.path:
    sys.path.insert(0, str(PYTHON_DEPS))

try:
    import kubernetes_validate
    import kubernetes_validate.utils
    import yaml
except ImportError as error:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        f"error: {error} for {sys.executable}. Install the validator's packages with\n"
        f"  bash -c 'source scripts/setup.sh && ambit_install_python_packages'\n"
        f"(into {PYTHON_DEPS}), or put them on PYTHONPATH.\n"
    )
    sys.exit(2)

# API groups served by Kubernetes itself ("" is the core group). An object in one of them must
# match a built-in schema; any other group is a custom resource.
BUILTIN_GROUPS = {
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
}

# The custom resources Ambit reads, with the versions it reads them in (ResourceKind.apiVersions).
MESH_KINDS = {
    ("gateway.networking.k8s.io", "Gateway"): ("v1", "v1beta1"),
    ("gateway.networking.k8s.io", "HTTPRoute"): ("v1", "v1beta1"),
    ("security.istio.io", "AuthorizationPolicy"): ("v1", "v1beta1"),
    ("security.istio.io", "PeerAuthentication"): ("v1", "v1beta1"),
}

KUSTOMIZE_GROUP = "kustomize.config.k8s.io"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
# Top-level fields kustomize accepts (it rejects any other).
KUSTOMIZATION_FIELDS = {
    "apiVersion", "kind", "metadata", "resources", "bases", "components", "crds", "namespace",
    "namePrefix", "nameSuffix", "commonLabels", "labels", "commonAnnotations", "patches",
    "patchesStrategicMerge", "patchesJson6902", "images", "replicas", "configMapGenerator",
    "secretGenerator", "generatorOptions", "generators", "transformers", "validators",
    "replacements", "vars", "configurations", "openapi", "helmCharts", "helmGlobals",
    "buildMetadata", "sortOptions",
}  # fmt: skip

CLUSTER_SCOPED_KINDS = {
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
    "StorageClass", "CustomResourceDefinition", "APIService", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding", "RuntimeClass", "IngressClass", "CSIDriver", "CSINode",
    "VolumeAttachment", "CertificateSigningRequest", "FlowSchema", "PriorityLevelConfiguration",
    "GatewayClass", "ClusterTrustBundle", "DeviceClass",
}  # fmt: skip

DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

HOST_PATH_TYPES = {"", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
                   "BlockDevice"}  # fmt: skip
MOUNT_PROPAGATIONS = {"None", "HostToContainer", "Bidirectional"}
PULL_POLICIES = {"Always", "Never", "IfNotPresent"}
PROTOCOLS = {"TCP", "UDP", "SCTP"}
SECCOMP_TYPES = {"RuntimeDefault", "Localhost", "Unconfined"}
SERVICE_TYPES = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}
WORKLOADS_WITH_SELECTOR = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet"}


@dataclass
class Document:
    """One YAML document: where it came from, its data and its node tree (for line numbers)."""

    source: str
    data: Any
    node: Any
    has_duplicate_keys: bool = False

    def line(self, path: Iterable[Any] = ()) -> int:
        """The 1-based line of `path` inside the document, or of the deepest part of it that exists."""
        node = self.node
        best = node.start_mark.line if node is not None else 0
        for part in path:
            child = None
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for key, value in node.value:
                    if key.value == part:
                        child = value
                        best = key.start_mark.line
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                child = node.value[part]
                best = child.start_mark.line
            if child is None:
                break
            node = child
        return best + 1


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    validated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def problem(self, doc: Document, path: list[Any], what: str, message: str) -> None:
        where = f"{doc.source}:{doc.line(path)}"
        field_name = format_path(path)
        self.problems.append(f"{where}: {what}: {field_name + ': ' if field_name else ''}{message}")


def format_path(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "." in part or "/" in part:  # a label or annotation key
            text += f'["{part}"]'
        else:
            text += f".{part}" if text else part
    return text


def describe(data: dict) -> str:
    """`Kind namespace/name`, as far as the object says."""
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = metadata.get("name", "<no name>")
    namespace = metadata.get("namespace")
    return f"{data.get('kind', '<no kind>')} {namespace + '/' if namespace else ''}{name}"


# MARK: Reading


def read_documents(label: str, text: str, report: Report) -> list[Document]:
    """Every non-empty document of a YAML stream, or none (with the problem reported) when it does not parse."""
    documents = []
    loader = yaml.SafeLoader(text)
    loader.name = label
    try:
        while loader.check_node():
            node = loader.get_node()
            data = loader.construct_document(node)
            if data is not None:
                document = Document(label, data, node)
                documents.append(document)
                for line, path in duplicate_keys(node, []):
                    document.has_duplicate_keys = True
                    what = describe(data) if isinstance(data, dict) else "document"
                    report.problems.append(f"{label}:{line}: {what}: {format_path(path)}: duplicate key")
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        report.problems.append(f"{where}: not valid YAML: {problem}{f' ({context})' if context else ''}")
        return []
    finally:
        loader.dispose()
    return documents


def duplicate_keys(node: Any, path: list[Any]) -> Iterator[tuple[int, list[Any]]]:
    """Keys given twice in one mapping (YAML loaders keep the last; the API server's strict field
    validation rejects them)."""
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            name = key.value
            if name in seen:
                yield key.start_mark.line + 1, path + [name]
            seen.add(name)
            yield from duplicate_keys(value, path + [name])
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from duplicate_keys(item, path + [index])


def expand_lists(documents: list[Document], report: Report) -> Iterator[tuple[Document, list[Any], dict]]:
    """Each object with its path in its document; the items of a v1 List count as objects."""
    for doc in documents:
        data = doc.data
        if not isinstance(data, dict):
            report.problem(doc, [], "document", f"a Kubernetes object must be a mapping, not {type(data).__name__}")
            continue
        if data.get("kind") == "List" and data.get("apiVersion") == "v1":
            for index, item in enumerate(data.get("items") or []):
                if isinstance(item, dict):
                    yield doc, ["items", index], item
                else:
                    report.problem(doc, ["items", index], "List", "an item must be a mapping")
            continue
        yield doc, [], data


# MARK: Schema validation


def supported_versions() -> set[str]:
    return set(kubernetes_validate.utils.all_versions())


def validate_object(doc: Document, base: list[Any], obj: dict, report: Report) -> None:
    what = describe(obj)
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not api_version:
        report.problem(doc, base + ["apiVersion"], what, "missing apiVersion")
        return
    if not isinstance(kind, str) or not kind:
        report.problem(doc, base + ["kind"], what, "missing kind")
        return
    group = api_version.rpartition("/")[0]
    if group == KUSTOMIZE_GROUP:  # checked by check_kustomization
        if Path(doc.source).name not in KUSTOMIZATION_FILES:
            report.problem(doc, base, what, "a Kustomization belongs in a file named kustomization.yaml")
        return
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        report.problem(doc, base + ["metadata", "name"], what, "missing metadata.name")
        return
    if group not in BUILTIN_GROUPS:
        before = len(report.problems)
        check_metadata(doc, base, obj, what, report)
        check_mesh_resource(doc, base, obj, what, report)
        if len(report.problems) == before and not doc.has_duplicate_keys:
            report.skipped.append(f"{what} ({api_version}) in {doc.source}")
        return
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        report.problem(
            doc, base + ["apiVersion"], what, f"Kubernetes {KUBERNETES_VERSION} has no kind {kind} in {api_version}"
        )
        return
    except kubernetes_validate.ValidationError as error:
        path = list(error.absolute_path)
        message = error.message
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set((error.schema or {}).get("properties", {}))
            unknown = sorted(key for key in error.instance if key not in known)
            if unknown:
                path.append(unknown[0])
                message = "unknown field" + (f"s {', '.join(map(repr, unknown))}" if len(unknown) > 1 else "")
        report.problem(doc, base + path, what, message)
        return
    before = len(report.problems)
    check_metadata(doc, base, obj, what, report)
    check_semantics(doc, base, obj, what, report)
    if len(report.problems) == before and not doc.has_duplicate_keys:
        report.validated.append(f"{what} in {doc.source}")


# MARK: Rules the API server enforces beyond the schema


def check_metadata(doc: Document, base: list[Any], obj: dict, what: str, report: Report) -> None:
    metadata = obj["metadata"]
    name = metadata["name"]
    rule = name_rule(obj.get("kind"))
    if not isinstance(name, str) or not rule[1](name):
        report.problem(doc, base + ["metadata", "name"], what, f"{name!r} is not a valid name ({rule[0]})")
    if obj.get("kind") in CLUSTER_SCOPED_KINDS and "namespace" in metadata:
        report.problem(doc, base + ["metadata", "namespace"], what, "a cluster-scoped object has no namespace")
    check_labels(doc, base + ["metadata"], metadata, what, report)


def name_rule(kind: Any) -> tuple[str, Any]:
    """How the API server validates the name of a kind: a description and a predicate."""
    if kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
        return "a path segment", lambda n: n not in (".", "..") and "/" not in n and "%" not in n
    if kind == "Service":
        return "RFC 1035 label", lambda n: len(n) <= 63 and DNS1035_LABEL.match(n) is not None
    if kind == "Namespace":
        return "RFC 1123 label", lambda n: len(n) <= 63 and DNS1123_LABEL.match(n) is not None
    return "RFC 1123 subdomain", lambda n: len(n) <= 253 and DNS1123_SUBDOMAIN.match(n) is not None


def check_labels(doc: Document, base: list[Any], metadata: dict, what: str, report: Report) -> None:
    for section in ("labels", "annotations"):
        entries = metadata.get(section)
        if not isinstance(entries, dict):
            continue
        for key, value in entries.items():
            path = base + [section, key]
            if not valid_qualified_name(key):
                report.problem(doc, path, what, f"{key!r} is not a valid {section[:-1]} key")
            if not isinstance(value, str):
                report.problem(doc, path, what, f"the value must be a string (quote {value!r})")
            elif section == "labels" and (len(value) > 63 or not LABEL_VALUE.match(value)):
                report.problem(doc, path, what, f"{value!r} is not a valid label value")


def valid_qualified_name(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(LABEL_NAME.match(name))


def check_semantics(doc: Document, base: list[Any], obj: dict, what: str, report: Report) -> None:
    kind = obj["kind"]
    spec = obj.get("spec") or {}

    def problem(path: list[Any], message: str) -> None:
        report.problem(doc, base + path, what, message)

    if kind == "Pod":
        check_pod_spec(spec, ["spec"], problem)
    elif kind in WORKLOADS_WITH_SELECTOR or kind == "Job":
        template = spec.get("template") or {}
        check_pod_spec(template.get("spec") or {}, ["spec", "template", "spec"], problem)
        labels = (template.get("metadata") or {}).get("labels") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        for key, value in selector.items():
            if labels.get(key) != value:
                problem(["spec", "selector", "matchLabels", key], "selector does not match the template's labels")
        expressions = (spec.get("selector") or {}).get("matchExpressions")
        if kind in WORKLOADS_WITH_SELECTOR and not selector and not expressions:
            problem(["spec", "selector"], "an empty selector selects nothing")
    elif kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        check_pod_spec(template.get("spec") or {}, ["spec", "jobTemplate", "spec", "template", "spec"], problem)
    elif kind == "Service":
        if spec.get("type", "ClusterIP") not in SERVICE_TYPES:
            problem(["spec", "type"], f"must be one of {sorted(SERVICE_TYPES)}")
        check_ports(spec.get("ports") or [], ["spec", "ports"], problem, named=len(spec.get("ports") or []) > 1)
    elif kind in ("ClusterRoleBinding", "RoleBinding"):
        role_kinds = {"ClusterRole"} if kind == "ClusterRoleBinding" else {"Role", "ClusterRole"}
        if (obj.get("roleRef") or {}).get("kind") not in role_kinds:
            problem(["roleRef", "kind"], f"must be {' or '.join(sorted(role_kinds))}")
        for index, subject in enumerate(obj.get("subjects") or []):
            if subject.get("kind") not in ("ServiceAccount", "User", "Group"):
                problem(["subjects", index, "kind"], "must be ServiceAccount, User or Group")
            elif subject.get("kind") == "ServiceAccount" and not subject.get("namespace"):
                problem(["subjects", index, "namespace"], "a ServiceAccount subject needs its namespace")
    elif kind in ("ClusterRole", "Role"):
        for index, rule in enumerate(obj.get("rules") or []):
            if not rule.get("verbs"):
                problem(["rules", index, "verbs"], "a rule needs verbs")


def check_ports(ports: list, base: list[Any], problem, named: bool) -> None:
    names = set()
    for index, port in enumerate(ports):
        name = port.get("name")
        if port.get("protocol", "TCP") not in PROTOCOLS:
            problem(base + [index, "protocol"], f"must be one of {sorted(PROTOCOLS)}")
        if name is None:
            if named:
                problem(base + [index, "name"], "every port needs a name when there are several")
            continue
        if name in names:
            problem(base + [index, "name"], f"duplicate port name {name!r}")
        names.add(name)


def check_pod_spec(spec: dict, base: list[Any], problem) -> None:
    volumes = {}
    for index, volume in enumerate(spec.get("volumes") or []):
        name = volume.get("name")
        if name in volumes:
            problem(base + ["volumes", index, "name"], f"duplicate volume {name!r}")
        volumes[name] = volume
        host_path = volume.get("hostPath")
        if isinstance(host_path, dict) and host_path.get("type", "") not in HOST_PATH_TYPES:
            problem(base + ["volumes", index, "hostPath", "type"], f"must be one of {sorted(HOST_PATH_TYPES - {''})}")
    container_names = set()
    for section in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(section) or []):
            path = base + [section, index]
            name = container.get("name", "")
            if not DNS1123_LABEL.match(name) or len(name) > 63:
                problem(path + ["name"], f"{name!r} is not a valid container name (RFC 1123 label)")
            if name in container_names:
                problem(path + ["name"], f"duplicate container name {name!r}")
            container_names.add(name)
            check_container(container, path, volumes, problem)


def check_container(container: dict, path: list[Any], volumes: dict, problem) -> None:
    if container.get("imagePullPolicy", "IfNotPresent") not in PULL_POLICIES:
        problem(path + ["imagePullPolicy"], f"must be one of {sorted(PULL_POLICIES)}")
    security = container.get("securityContext") or {}
    privileged = security.get("privileged") is True
    added = [str(cap) for cap in ((security.get("capabilities") or {}).get("add") or [])]
    if security.get("allowPrivilegeEscalation") is False:
        if privileged:
            problem(path + ["securityContext", "allowPrivilegeEscalation"], "cannot be false when privileged")
        if any(cap.upper() in ("SYS_ADMIN", "CAP_SYS_ADMIN") for cap in added):
            problem(
                path + ["securityContext", "allowPrivilegeEscalation"],
                "cannot be false with CAP_SYS_ADMIN (Kubernetes makes it true for such a container)",
            )
    seccomp = (security.get("seccompProfile") or {}).get("type")
    if seccomp is not None and seccomp not in SECCOMP_TYPES:
        problem(path + ["securityContext", "seccompProfile", "type"], f"must be one of {sorted(SECCOMP_TYPES)}")
    for index, mount in enumerate(container.get("volumeMounts") or []):
        mount_path = path + ["volumeMounts", index]
        if mount.get("name") not in volumes:
            problem(mount_path + ["name"], f"no volume named {mount.get('name')!r} in the pod")
        propagation = mount.get("mountPropagation")
        if propagation is not None and propagation not in MOUNT_PROPAGATIONS:
            problem(mount_path + ["mountPropagation"], f"must be one of {sorted(MOUNT_PROPAGATIONS)}")
        if propagation == "Bidirectional" and not privileged:
            problem(mount_path + ["mountPropagation"], "Bidirectional needs a privileged container")
    port_names = set()
    for index, port in enumerate(container.get("ports") or []):
        name = port.get("name")
        if port.get("protocol", "TCP") not in PROTOCOLS:
            problem(path + ["ports", index, "protocol"], f"must be one of {sorted(PROTOCOLS)}")
        if name is None:
            continue
        if len(name) > 15 or not IANA_SVC_NAME.match(name) or "--" in name or not re.search("[a-z]", name):
            problem(path + ["ports", index, "name"], f"{name!r} is not a valid port name (IANA service name)")
        port_names.add(name)
    for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = container.get(probe_name) or {}
        for handler in ("httpGet", "tcpSocket", "grpc"):
            port = (probe.get(handler) or {}).get("port")
            if isinstance(port, str) and port not in port_names:
                problem(path + [probe_name, handler, "port"], f"no container port named {port!r}")


# MARK: The custom resources Ambit reads


def check_mesh_resource(doc: Document, base: list[Any], obj: dict, what: str, report: Report) -> None:
    """The little a custom resource is checked for without its CRD: an apiVersion Ambit reads, and
    a Gateway's required fields (`ambitctl waypoint generate` emits Gateways)."""
    group, _, version = obj["apiVersion"].rpartition("/")
    versions = MESH_KINDS.get((group, obj["kind"]))
    if versions is not None and version not in versions:
        report.problem(doc, base + ["apiVersion"], what, f"Ambit reads {obj['kind']} as {', '.join(versions)}")
        return
    if (group, obj["kind"]) != ("gateway.networking.k8s.io", "Gateway"):
        return
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        report.problem(doc, base + ["spec"], what, "a Gateway needs a spec")
        return
    if not isinstance(spec.get("gatewayClassName"), str) or not spec["gatewayClassName"]:
        report.problem(doc, base + ["spec", "gatewayClassName"], what, "required")
    listeners = spec.get("listeners")
    if not isinstance(listeners, list) or not listeners:
        report.problem(doc, base + ["spec", "listeners"], what, "a Gateway needs at least one listener")
        return
    for index, listener in enumerate(listeners):
        path = base + ["spec", "listeners", index]
        if not isinstance(listener, dict):
            report.problem(doc, path, what, "a listener is a mapping")
            continue
        if not isinstance(listener.get("name"), str) or not DNS1123_SUBDOMAIN.match(listener["name"]):
            report.problem(doc, path + ["name"], what, "required, an RFC 1123 subdomain")
        port = listener.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            report.problem(doc, path + ["port"], what, "required, a port number")
        if not isinstance(listener.get("protocol"), str) or not listener["protocol"]:
            report.problem(doc, path + ["protocol"], what, "required")


# MARK: Kustomizations


def check_kustomization(path: Path, label: str, report: Report) -> None:
    try:
        text = path.read_text()
    except OSError as error:
        report.problems.append(f"{label}: cannot read: {error}")
        return
    documents = read_documents(label, text, report)
    if len(documents) != 1 or not isinstance(documents[0].data, dict):
        if documents:
            report.problems.append(f"{label}: a kustomization is exactly one mapping")
        return
    doc = documents[0]
    data = doc.data
    what = "Kustomization"
    if not str(data.get("apiVersion", "")).startswith(KUSTOMIZE_GROUP + "/") or data.get("kind") != "Kustomization":
        report.problem(doc, ["kind"], what, f"must be kind Kustomization, apiVersion {KUSTOMIZE_GROUP}/v1beta1")
    for key in data:
        if key not in KUSTOMIZATION_FIELDS:
            report.problem(doc, [key], what, "unknown kustomization field")
    directory = path.parent
    named: list[tuple[list[Any], str]] = []
    for key in ("resources", "bases", "components", "crds", "patchesStrategicMerge"):
        for index, entry in enumerate(data.get(key) or []):
            named.append(([key, index], entry))
    for key in ("patches", "patchesJson6902"):
        for index, entry in enumerate(data.get(key) or []):
            if isinstance(entry, dict) and "path" in entry:
                named.append(([key, index, "path"], entry["path"]))
    listed = set()
    for where, entry in named:
        if not isinstance(entry, str):
            report.problem(doc, where, what, "must be a path")
            continue
        if "://" in entry:
            report.problem(doc, where, what, "remote resources are not allowed: deploy/ must be self-contained")
            continue
        target = (directory / entry).resolve()
        if not target.exists():
            report.problem(doc, where, what, f"{entry!r} does not exist")
        elif target.is_dir() and not any((target / name).is_file() for name in KUSTOMIZATION_FILES):
            report.problem(doc, where, what, f"{entry!r} is a directory without a kustomization.yaml")
        elif target.parent == directory.resolve() and target.is_file():
            if target.name in listed:
                report.problem(doc, where, what, f"{entry!r} is listed twice")
            listed.add(target.name)
    present = {p.name for p in yaml_files_in(directory) if p.name not in KUSTOMIZATION_FILES}
    for name in sorted(present - listed):
        report.problems.append(f"{label}: {name} is in the directory but not listed")


def yaml_files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))


# MARK: Main


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def run(arguments: list[str]) -> int:
    if any(argument in ("-h", "--help") for argument in arguments):
        print(__doc__.strip())
        return 0
    available = supported_versions()
    if KUBERNETES_VERSION not in available:
        newest = max(available, key=lambda v: tuple(int(x) for x in v.split(".")))
        sys.stderr.write(
            f"error: kubernetes-validate {kubernetes_validate.__version__} has no schemas for Kubernetes "
            f"{KUBERNETES_VERSION} (newest: {newest}); install the version pinned in Tests/Deploy/requirements.txt\n"
        )
        return 2

    report = Report()
    inputs: list[tuple[str, Optional[Path]]] = []  # (label, path or None for stdin)
    kustomizations: list[Path] = []

    def add_tree(root: Path) -> None:
        for directory in sorted({root, *(p for p in root.rglob("*") if p.is_dir())}):
            files = yaml_files_in(directory)
            kustomization = next((directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None)
            if files and kustomization is None:
                report.problems.append(f"{relative(directory)}/: YAML files but no kustomization.yaml")
            if kustomization is not None:
                kustomizations.append(kustomization)
            inputs.extend((relative(p), p) for p in files)

    for argument in arguments or [str(DEPLOY)]:
        path = Path(argument)
        if argument == "-":
            inputs.append(("<stdin>", None))
        elif path.is_dir():
            add_tree(path)
        elif path.exists():
            inputs.append((relative(path), path))
            if path.name in KUSTOMIZATION_FILES:
                kustomizations.append(path)
        else:
            sys.stderr.write(f"error: {argument} does not exist\n")
            return 2

    objects = 0
    for label, path in inputs:
        try:
            text = sys.stdin.read() if path is None else path.read_text()
        except OSError as error:
            sys.stderr.write(f"error: cannot read {label}: {error}\n")
            return 2
        found = 0
        for doc, base, obj in expand_lists(read_documents(label, text, report), report):
            found += 1
            validate_object(doc, base, obj, report)
        if found == 0 and not any(p.startswith(f"{label}:") for p in report.problems):
            report.problems.append(f"{label}: no Kubernetes objects")
        objects += found
    for kustomization in kustomizations:
        check_kustomization(kustomization, relative(kustomization), report)

    for line in report.validated:
        print(f"valid    {line}")
    for line in report.skipped:
        print(f"skipped  {line}: custom resource, no built-in schema")
    schema = f"Kubernetes {KUBERNETES_VERSION} (kubernetes-validate {kubernetes_validate.__version__}, strict)"
    if report.problems:
        for problem in report.problems:
            sys.stderr.write(f"error: {problem}\n")
        sys.stderr.write(f"{len(report.problems)} problem(s) in {len(inputs)} file(s) against {schema}\n")
        return 1
    print(
        f"ok: {len(report.validated)} built-in objects valid, {len(report.skipped)} custom resources skipped, "
        f"{len(kustomizations)} kustomizations consistent; {objects} objects in {len(inputs)} files against {schema}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
