"""Offline stand-in for the get-pip.py that `ansible-test --venv` downloads from a host we cannot reach.

ansible-test runs it as `python get-pip.py [pip options] pip==X setuptools wheel` inside a fresh
venv; ensurepip plus the configured package index does the same job.
"""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *sys.argv[1:]])
