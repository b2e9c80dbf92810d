"""Unit tests of scripts/check-modules: each rule fails on a package that breaks it.

    python3 -m unittest discover -s Tests/Architecture
"""

import importlib.machinery
import importlib.util
import os
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
loader = importlib.machinery.SourceFileLoader("check_modules", os.path.join(ROOT, "scripts", "check-modules"))
spec = importlib.util.spec_from_loader("check_modules", loader)
check_modules = importlib.util.module_from_spec(spec)
loader.exec_module(check_modules)


def target(name, deps=(), products=(), kind="regular"):
    return {
        "name": name,
        "type": kind,
        "path": f"/nonexistent/{name}",
        "dependencies": [{"byName": [d, None]} for d in deps] + [{"product": [p, "pkg", None, None]} for p in products],
    }


GRAPH = """<!-- module-graph -->
```mermaid
graph BT
    AmbitPolicy --> AmbitModel
```
"""


class CheckModulesTests(unittest.TestCase):
    def package(self, *targets):
        return {"targets": list(targets)}

    def test_a_clean_package_passes(self):
        package = self.package(target("AmbitModel"), target("AmbitPolicy", ["AmbitModel"]))
        sources = {"AmbitModel": {}, "AmbitPolicy": {"AmbitModel": ["p.swift"], "FoundationEssentials": ["p.swift"]}}
        self.assertEqual(check_modules.check(package, sources, GRAPH), [])

    def test_full_foundation_is_for_tests_only(self):
        package = self.package(
            target("AmbitModel"),
            target("AmbitPolicy", ["AmbitModel"]),
            target("AmbitPolicyTests", ["AmbitPolicy"], kind="test"),
        )
        sources = {
            "AmbitModel": {},
            "AmbitPolicy": {"AmbitModel": ["p.swift"], "Foundation": ["f.swift"]},
            "AmbitPolicyTests": {"AmbitPolicy": ["t.swift"], "Foundation": ["t.swift"]},
        }
        problems = check_modules.check(package, sources, GRAPH)
        self.assertEqual([p for p in problems if "Foundation" in p], [
            f"f.swift: AmbitPolicy must not import Foundation (see FORBIDDEN in {check_modules.sys.argv[0]})"
        ])

    def test_an_undeclared_import_fails(self):
        package = self.package(target("AmbitModel"), target("AmbitPolicy", ["AmbitModel"]))
        sources = {"AmbitModel": {}, "AmbitPolicy": {"AmbitModel": ["p.swift"], "AmbitConfig": ["q.swift"]}}
        problems = check_modules.check(package, sources, GRAPH)
        self.assertIn("q.swift: imports AmbitConfig, which AmbitPolicy does not declare in Package.swift", problems)

    def test_an_unused_dependency_fails(self):
        package = self.package(target("AmbitModel"), target("AmbitPolicy", ["AmbitModel"], ["Logging"]))
        sources = {"AmbitModel": {}, "AmbitPolicy": {"AmbitModel": ["p.swift"]}}
        problems = check_modules.check(package, sources, GRAPH)
        self.assertIn("Package.swift: AmbitPolicy declares Logging but no file of it imports it", problems)

    def test_a_forbidden_import_fails_even_when_declared(self):
        package = self.package(target("AmbitModel"), target("AmbitPolicy", ["AmbitModel"], ["NIOCore"]))
        sources = {"AmbitModel": {}, "AmbitPolicy": {"AmbitModel": ["p.swift"], "NIOCore": ["n.swift"]}}
        problems = check_modules.check(package, sources, GRAPH)
        self.assertTrue(any("AmbitPolicy must not import NIOCore" in p for p in problems), problems)

    def test_a_graph_that_differs_from_the_package_fails(self):
        package = self.package(target("AmbitModel"), target("AmbitPolicy", ["AmbitModel"]), target("AmbitConfig", ["AmbitPolicy"]))
        sources = {"AmbitModel": {}, "AmbitPolicy": {"AmbitModel": ["p.swift"]}, "AmbitConfig": {"AmbitPolicy": ["c.swift"]}}
        problems = check_modules.check(package, sources, GRAPH)
        self.assertTrue(any(p.startswith("docs/architecture.md: the graph of AmbitConfig differs") for p in problems), problems)

    def test_a_drawn_edge_the_package_lacks_fails(self):
        package = self.package(target("AmbitModel"), target("AmbitPolicy"))
        sources = {"AmbitModel": {}, "AmbitPolicy": {}}
        problems = check_modules.check(package, sources, GRAPH)
        self.assertIn(
            "docs/architecture.md: draws AmbitPolicy --> AmbitModel, which Package.swift does not declare", problems
        )

    def test_imports_inside_multiline_strings_do_not_count(self):
        text = 'import Foundation\nlet script = """\n    import os\n    """\n'
        found = check_modules.IMPORT.findall(check_modules.MULTILINE_STRING.sub('""', text))
        self.assertEqual(found, ["Foundation"])


if __name__ == "__main__":
    unittest.main()
