"""Table tests of bench/mirror.py's pure parts: how an access-log line is read and counted, and the tags
it seeds (`python3 bench/test_mirror.py`; `make bench-mirror` runs them first)."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.modules.pop("bench", None)  # run from the repository root, `bench` would be this folder, not bench.py
import mirror  # noqa: E402


class KindOf(unittest.TestCase):
    def test_each_request_lands_in_its_kind(self) -> None:
        table = [
            ("GET", "/v2/a/b/tags/list", "tags list"),
            ("GET", "/v2/a/b/tags/list?n=100&last=v1", "tags list"),
            ("GET", "/v2/a/b/manifests/v1.2.3", "manifest GET"),
            ("HEAD", "/v2/a/b/manifests/sha256:abc", "manifest HEAD"),
            ("PUT", "/v2/a/b/manifests/latest", "manifest PUT"),
            ("DELETE", "/v2/a/b/manifests/sha256:abc", "other"),
            ("HEAD", "/v2/a/b/blobs/sha256:abc", "blob HEAD"),
            ("GET", "/v2/a/b/blobs/sha256:abc", "blob GET"),
            ("POST", "/v2/a/b/blobs/uploads/", "blob upload"),
            ("POST", "/v2/a/b/blobs/uploads/?mount=sha256:abc&from=c/d", "blob upload"),
            ("PATCH", "/v2/a/b/blobs/uploads/5f0e?_state=x", "blob upload"),
            ("PUT", "/v2/a/b/blobs/uploads/5f0e?digest=sha256:abc", "blob upload"),
            ("GET", "/v2/", "other"),
            ("GET", "/v2/a/b/referrers/sha256:abc", "referrers"),
            ("GET", "/v2/a/b/referrers/sha256:abc?artifactType=x", "referrers"),
            ("HEAD", "/v2/a/b/manifests/sha256-" + "0" * 64 + ".sig", "signature tag"),
            ("HEAD", "/v2/a/b/manifests/sha256-" + "0" * 64 + ".att", "signature tag"),
            ("GET", "/v2/a/b/manifests/sha256-" + "a" * 64, "signature tag"),
            ("PUT", "/v2/a/b/manifests/sha256-" + "a" * 64 + ".sbom", "signature tag"),
            ("HEAD", "/v2/a/b/manifests/sha256:" + "a" * 64, "manifest HEAD"),
            ("HEAD", "/v2/a/b/manifests/sha256-abc.sig", "manifest HEAD"),
            ("GET", "/v2/_catalog", "other"),
            # A repository named like a kind is still read by the part after it.
            ("GET", "/v2/tags/list/manifests/v1", "manifest GET"),
        ]
        for method, uri, kind in table:
            with self.subTest(method=method, uri=uri):
                self.assertEqual(mirror.kind_of(method, uri), kind)


class AccessLine(unittest.TestCase):
    def test_combined_log_lines_are_read_and_others_are_not(self) -> None:
        table = [
            ('127.0.0.1 - - [29/Nov/2026:23:14:52 +0000] "HEAD /v2/m/app/manifests/v1.0.0 HTTP/2.0" 200 1234 "" '
             '"regclient/regsync (v0.11.7)"',
             ("HEAD", "/v2/m/app/manifests/v1.0.0", "200", "regclient/regsync (v0.11.7)")),
            ('127.0.0.1 - AWS [29/Nov/2026:23:14:52 +0000] "GET /v2/ HTTP/1.1" 401 87 "-" "skopeo/1.9.3"',
             ("GET", "/v2/", "401", "skopeo/1.9.3")),
            ('time="2026-11-29T23:14:52Z" level=warning msg="error authorizing context"', None),
            ("", None),
        ]
        for line, want in table:
            with self.subTest(line=line):
                m = mirror.ACCESS_LINE.match(line)
                self.assertEqual(m.groups() if m else None, want)


class Tags(unittest.TestCase):
    def test_tag_names_are_distinct_and_of_every_sort(self) -> None:
        for n in (20, 100, 1000):
            with self.subTest(n=n):
                tags = mirror.tag_names(n)
                self.assertEqual(len(tags), n)
                self.assertEqual(len(set(tags)), n)
                self.assertIn("latest", tags)
                self.assertTrue(any(t.endswith("-rc.1") for t in tags))
                self.assertTrue(any(len(t) == 7 and not t.startswith("v") for t in tags))
                self.assertEqual(tags, mirror.tag_names(n), "tags are reproducible")

    def test_images_are_distinct_manifests_sharing_base_layers(self) -> None:
        images = mirror.source_images(20)
        self.assertEqual(len({i.digest for i in images}), 20)
        bases = [tuple(i.blobs[1:3]) for i in images]
        self.assertEqual(len(set(bases)), 1, "the two base layers are shared")
        self.assertEqual(len({i.blobs[3] for i in images}), 20, "each image has a layer of its own")


if __name__ == "__main__":
    unittest.main()
