"""Tests of hack/release/release.py's pure parts (`make image-check`, part of
`make test`); tests/deploy/published.rs publishes a release and installs it."""

from __future__ import annotations

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import release  # noqa: E402

DIGEST = "sha256:" + "ab" * 32


class ValuesTest(unittest.TestCase):
    def test_the_chart_s_values_name_the_image_by_digest_and_keep_their_comments(self) -> None:
        values = (release.CHART / "values.yaml").read_text()
        changed = release.values_by_digest(values, "registry.example.com/team/image-promoter", DIGEST)
        self.assertIn("  repository: registry.example.com/team/image-promoter\n", changed)
        self.assertIn(f'  digest: "{DIGEST}"\n', changed)
        self.assertEqual(changed.count("# --"), values.count("# --"), "comments kept")
        self.assertEqual(len(changed.splitlines()), len(values.splitlines()), "two lines changed, none added")

    def test_only_the_image_block_changes(self) -> None:
        values = 'other:\n  repository: keep\nimage:\n  # -- x\n  repository: a/b\n  tag: ""\n  digest: ""\nlater:\n  digest: keep\n'
        self.assertEqual(
            release.values_by_digest(values, "r/i", DIGEST),
            f'other:\n  repository: keep\nimage:\n  # -- x\n  repository: r/i\n  tag: ""\n  digest: "{DIGEST}"\nlater:\n  digest: keep\n',
        )

    def test_values_without_an_image_block_are_an_error(self) -> None:
        with self.assertRaises(release.ReleaseError):
            release.values_by_digest("image: {}\n", "r/i", DIGEST)


class PreflightTest(unittest.TestCase):
    def test_a_release_needs_cargo_s_version_a_key_file_and_its_password(self) -> None:
        version = release.cargo_version()
        with tempfile.NamedTemporaryFile() as key:
            good = {"COSIGN_KEY": key.name, "COSIGN_PASSWORD": ""}
            self.assertEqual(release.preflight(version, good), Path(key.name))
            refusals = {
                "COSIGN_KEY is not set": (version, {"COSIGN_PASSWORD": "x"}),
                "is not a file": (version, {"COSIGN_KEY": key.name + ".missing", "COSIGN_PASSWORD": "x"}),
                "COSIGN_PASSWORD is not set": (version, {"COSIGN_KEY": key.name}),
                "not a SemVer version": ("v1", good),
                "Cargo.toml says": ("99.0.0", good),
            }
            for said, (asked, env) in refusals.items():
                with self.assertRaises(release.ReleaseError, msg=said) as refused:
                    release.preflight(asked, env)
                self.assertIn(said, str(refused.exception))


if __name__ == "__main__":
    unittest.main()
