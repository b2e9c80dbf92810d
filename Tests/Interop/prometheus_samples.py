#!/usr/bin/env python3
"""Reads a Prometheus text exposition on stdin with the reference parser (prometheus_client.parser)
and prints, as one JSON object, the sum of every sample whose labels include all of the given
`name=value` pairs, keyed by sample name (counters keep their `_total` suffix):

    curl -s http://127.0.0.1:15020/metrics | prometheus_samples.py reporter=destination source_workload=web

A line the parser rejects fails the whole run (exit 1), so a test also checks the exposition is valid.
It also prints, under "__labels__", the label sets of the samples that matched (sorted, distinct).
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    wanted = dict(argument.split("=", 1) for argument in sys.argv[1:])
    sums = {}
    label_sets = set()
    for family in text_string_to_metric_families(sys.stdin.read()):
        for sample in family.samples:
            if all(sample.labels.get(key) == value for key, value in wanted.items()):
                sums[sample.name] = sums.get(sample.name, 0) + sample.value
                label_sets.add(json.dumps(sample.labels, sort_keys=True))
    sums["__labels__"] = [json.loads(labels) for labels in sorted(label_sets)]
    print(json.dumps(sums, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
