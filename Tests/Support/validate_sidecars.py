#!/usr/bin/python3
"""Validates ringcap sidecars against Schemas/sidecar.schema.json with the python-jsonschema
library (an independent validator: the tests do not check our output with our own code).

Usage: validate_sidecars.py SCHEMA FILE...   (or FILE list on stdin with "-")
Prints "ok N" and exits 0 when every file validates; otherwise prints each failure and exits 1.
"""
import json
import sys

import jsonschema


def main() -> int:
    schema_path, files = sys.argv[1], sys.argv[2:]
    if files == ["-"]:
        files = [line.strip() for line in sys.stdin if line.strip()]
    with open(schema_path) as f:
        schema = json.load(f)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    failures = 0
    for path in files:
        try:
            with open(path) as f:
                doc = json.load(f)
        except Exception as e:  # noqa: BLE001 - report any unreadable file
            print(f"{path}: not JSON: {e}")
            failures += 1
            continue
        for error in validator.iter_errors(doc):
            print(f"{path}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
            failures += 1
    if failures:
        return 1
    print(f"ok {len(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
