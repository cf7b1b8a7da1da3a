"""Make this checkout importable as ansible_collections.pressluft.wordpress for in-process module tests."""

from __future__ import annotations

import sys

from tests.rig.ansible import collections_path

if str(collections_path()) not in sys.path:
    sys.path.insert(0, str(collections_path()))
