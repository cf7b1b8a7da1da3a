"""Offline stand-in for the get-pip.py that `ansible-test --venv` downloads from a host we cannot reach.

ansible-test runs it as `python get-pip.py [pip options] pip==X [--no-setuptools] [--no-wheel]`
inside a fresh venv; ensurepip plus the configured package index does the same job.
"""

import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}  # get-pip.py's own flags, unknown to pip

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args])
