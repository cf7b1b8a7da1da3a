"""Pressluft control plane: models, state machines, job queue and the ansible-runner launcher."""

# The one version of the wheel, the CLI and the collection: galaxy.yml carries it as semver
# (collection_version()), checked by scripts/build and tests/unit/test_version.py.
__version__ = "1.0.0.dev0"


def collection_version(version: str = __version__) -> str:
    """PEP 440 -> semver for galaxy.yml: 1.0.0.dev0 -> 1.0.0-dev0, 1.2.0rc1 -> 1.2.0-rc1, 1.2.0 -> 1.2.0."""
    import re

    m = re.fullmatch(r"(\d+\.\d+\.\d+)(?:\.?(dev|a|b|rc)(\d+))?", version)
    if m is None:
        raise ValueError(f"version {version!r} is not MAJOR.MINOR.PATCH[.devN|aN|bN|rcN]")
    base, tag, n = m.groups()
    return base if tag is None else f"{base}-{tag}{n}"
