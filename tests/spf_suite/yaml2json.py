#!/usr/bin/env python3
"""Converts the RFC 7208 SPF test suite (a stream of YAML documents, optionally gzipped)
to one JSON array on stdout, so the C++ runner (spf_suite_main.cc) needs no YAML parser.

Each scenario becomes {"description", "tests": {name: test}, "zonedata": {name: [item]}}
with the order of the file kept. Needs python3-yaml.

usage: yaml2json.py rfc7208-tests.yml[.gz] > rfc7208-tests.json
"""
import gzip
import json
import sys

import yaml


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        scenarios = [doc for doc in yaml.safe_load_all(f) if doc]
    for s in scenarios:
        for test in s.get("tests", {}).values():
            for key in ("host", "helo", "mailfrom"):  # YAML may read a bare HELO as a number
                if key in test and test[key] is not None:
                    test[key] = str(test[key])
    json.dump(scenarios, sys.stdout, indent=1)  # ensure_ascii: bytes above 0x7f arrive as \u escapes
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
