"""Writes tests/durations.json (seconds per test file) from a JUnit report of a full run:

    make test PYTEST_ARGS=--junitxml=/tmp/suite.xml
    .venv/bin/python tests/record_durations.py /tmp/suite.xml

conftest.py hands the longest files to the workers first. The figures only order the
queue: a stale file makes the suite slower, never wrong.
"""

import collections
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

OUT = Path(__file__).with_name("durations.json")


def main(report: str) -> None:
    root = OUT.parent.parent
    seconds = collections.Counter()
    for case in ET.parse(report).iter("testcase"):
        parts = case.get("classname", "").split(".")
        while parts and not (root / ("/".join(parts) + ".py")).is_file():
            parts.pop()  # a test class's name after its module's
        if parts:
            seconds["/".join(parts) + ".py"] += float(case.get("time", 0))
    ordered = {name: round(value, 1) for name, value in sorted(seconds.items())}
    OUT.write_text(json.dumps(ordered, indent=1) + "\n")
    print(f"{OUT}: {len(ordered)} files, {sum(ordered.values()) / 60:.1f} min of tests")


if __name__ == "__main__":
    main(sys.argv[1])
