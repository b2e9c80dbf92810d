#!/usr/bin/env python3
"""Tests of validate_manifests.py: deploy/ passes, and broken copies of it fail with a message that
names the file, the line, the object and the field.

    /usr/bin/python3 -m unittest discover -s Tests/Deploy -v
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
VALIDATOR = HERE / "validate_manifests.py"
DEPLOY = HERE.parents[1] / "deploy"


def run(*arguments: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(VALIDATOR), *arguments], input=stdin, capture_output=True, text=True, timeout=120
    )


class ValidateManifestsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.copy = Path(tempfile.mkdtemp(prefix="ambit-deploy-")) / "deploy"
        shutil.copytree(DEPLOY, self.copy)
        self.addCleanup(shutil.rmtree, self.copy.parent)

    def edit(self, name: str, old: str, new: str) -> Path:
        path = self.copy / name
        text = path.read_text()
        self.assertIn(old, text)
        path.write_text(text.replace(old, new, 1))
        return path

    def assertFails(self, result: subprocess.CompletedProcess, *fragments: str) -> None:
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        for fragment in fragments:
            self.assertIn(fragment, result.stderr)

    def test_deploy_is_valid(self) -> None:
        result = run()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("valid    DaemonSet ambit-system/ambit-node in deploy/daemonset.yaml", result.stdout)
        self.assertIn("skipped  Gateway demo/reviews-waypoint (gateway.networking.k8s.io/v1)", result.stdout)
        self.assertIn("3 kustomizations consistent", result.stdout)

    def test_unknown_field_names_file_line_object_and_field(self) -> None:
        volume = "          hostPath:\n            path: /var/run/netns"
        path = self.edit("daemonset.yaml", volume, volume.replace("hostPath:", "hostPathh:"))
        line = path.read_text().splitlines().index("          hostPathh:") + 1
        self.assertFails(
            run(str(path)),
            f"daemonset.yaml:{line}: DaemonSet ambit-system/ambit-node: "
            "spec.template.spec.volumes[0].hostPathh: unknown field",
        )

    def test_wrong_type(self) -> None:
        path = self.edit("daemonset.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: x")
        self.assertFails(run(str(path)), "spec.template.spec.terminationGracePeriodSeconds: 'x' is not of type")

    def test_stdin_and_privilege_escalation_with_sys_admin(self) -> None:
        text = (DEPLOY / "daemonset.yaml").read_text()
        text = text.replace("allowPrivilegeEscalation: true", "allowPrivilegeEscalation: false", 1)
        self.assertFails(
            run("-", stdin=text),
            "<stdin>:",
            "containers[0].securityContext.allowPrivilegeEscalation: cannot be false with CAP_SYS_ADMIN",
        )

    def test_apiversion_kubernetes_does_not_serve(self) -> None:
        path = self.edit("waypoint/waypoint.yaml", "apiVersion: apps/v1", "apiVersion: apps/v1beta2")
        self.assertFails(run(str(path)), "Deployment demo/reviews-waypoint: apiVersion: Kubernetes ")

    def test_rules_beyond_the_schema(self) -> None:
        mount = "            - name: tmp\n              mountPath: /tmp"
        self.edit("daemonset.yaml", mount, mount.replace("name: tmp", "name: temp"))
        path = self.edit("daemonset.yaml", "type: Directory\n", "type: Dir\n")
        self.assertFails(
            run(str(path)),
            "volumeMounts[6].name: no volume named 'temp' in the pod",
            "volumes[2].hostPath.type: must be one of",
        )

    def test_kustomization_must_list_exactly_its_directory(self) -> None:
        path = self.edit("kustomization.yaml", "  - configmap.yaml\n", "  - config-map.yaml\n")
        self.assertFails(
            run(str(path)),
            "Kustomization: resources[3]: 'config-map.yaml' does not exist",
            "configmap.yaml is in the directory but not listed",
        )

    def test_gateway_required_fields(self) -> None:
        path = self.edit("waypoint/waypoint.yaml", "  gatewayClassName: istio-waypoint\n", "")
        self.assertFails(run(str(path)), "Gateway demo/reviews-waypoint: spec.gatewayClassName: required")

    def test_duplicate_key(self) -> None:
        path = self.edit("configmap.yaml", "  capture: nftables\n", "  capture: nftables\n  capture: ebpf\n")
        self.assertFails(run(str(path)), "ConfigMap ambit-system/ambit-node: data.capture: duplicate key")

    def test_no_objects_is_an_error(self) -> None:
        self.assertFails(run("-", stdin=""), "<stdin>: no Kubernetes objects")

    def test_invalid_yaml(self) -> None:
        self.assertFails(run("-", stdin="kind: [\n"), "<stdin>:2:1: not valid YAML")


if __name__ == "__main__":
    unittest.main()
