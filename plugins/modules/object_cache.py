#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: object_cache
short_description: Build a release of a Pressluft environment with the Redis object cache on or off
description:
  - Checks the fencing token of the site first, so a stale job changes nothing.
  - Releases are immutable, so the Redis Object Cache plugin and its drop-in C(wp-content/object-cache.php)
    come with a new release O(release) built from the live one; role C(env_release) then checks and
    switches it like a deploy.
  - O(state=enabled) puts the plugin of O(plugin_zip) (a zip laid out as C(redis-cache/...), as
    wordpress.org ships it) into C(wp-content/plugins/redis-cache), replacing the one there, and its
    C(includes/object-cache.php) as the drop-in. O(state=disabled) removes the drop-in (the plugin stays).
  - When the live release already is what O(state) asks for, nothing is built (RV(release) is empty).
  - The connection settings (socket, ACL user, key prefix, database, selective flush) are in the
    environment's C(wp-config.php), written by role C(site_env) (docs/cache.md).
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
options:
  state:
    description: Whether the live release should have the object cache drop-in.
    type: str
    choices: [enabled, disabled]
    default: enabled
  release:
    description: Name of the release to build (C(YYYYMMDDTHHMMSSZ) as deploys name them).
    type: str
    required: true
  plugin_zip:
    description: The plugin's zip on the node; required with O(state=enabled).
    type: path
  plugin_sha256:
    description:
      - The SHA-256 (hex) the zip must have; required with O(state=enabled). The zip is read once,
        checked, and only those checked bytes are unpacked; a mismatch is refused before anything is built.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
'''

EXAMPLES = r'''
- name: Build shop/production's next release with the object cache on
  pressluft.wordpress.object_cache:
    site: shop
    state: enabled
    release: 20260101T000000Z
    plugin_zip: /var/cache/pressluft/redis-cache-2.6.3.zip
    plugin_sha256: 478e9afdb35716a62ce186f701250f87060b56096c4d2273ecf2084a775e9eef
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"
  register: built
'''

RETURN = r'''
release:
  description: The release built, empty when the live release already was as asked.
  returned: always
  type: str
  sample: 20260101T000000Z
version:
  description: The plugin's version (from its header), with O(state=enabled).
  returned: always
  type: str
  sample: 2.6.3
'''

import hashlib
import io
import os
import re
import shutil
import zipfile

from ansible_collections.pressluft.wordpress.plugins.module_utils._env import env_module
from ansible_collections.pressluft.wordpress.plugins.module_utils._releases import valid_release

PLUGIN = 'redis-cache'
DROPIN = os.path.join('wp-content', 'object-cache.php')
SHA256_RE = re.compile(r'^[0-9a-f]{64}$')
VERSION_RE = re.compile(r'^[ \t/*#@]*Version:\s*([0-9][0-9A-Za-z.+-]{0,40})\s*$', re.M)


class ObjectCacheError(Exception):
    pass


def read_pinned(path, sha256):
    """The zip's bytes, refused unless their SHA-256 is `sha256`: a download (or a copy) that is not the
    pinned plugin never reaches the unpacking."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except (IOError, OSError) as exc:
        raise ObjectCacheError('cannot read %s: %s' % (path, exc)) from None
    digest, pinned = hashlib.sha256(data).hexdigest(), sha256.lower()
    if digest != pinned:
        raise ObjectCacheError('%s has SHA-256 %s, not the pinned %s: refused' % (path, digest, pinned))
    return data


def read_zip(path, data=None):
    """(plugin version, drop-in bytes); refuses a zip with anything outside redis-cache/ or a link.
    `data`: the zip's bytes (read_pinned), else the file at `path`."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data) if data is not None else path)
    except (IOError, OSError, zipfile.BadZipfile) as exc:
        raise ObjectCacheError('cannot read %s: %s' % (path, exc)) from None
    with zf:
        members = zf.infolist()
        for info in members:
            name = info.filename
            parts = name.split('/')
            if name.startswith('/') or '\\' in name or '..' in parts or parts[0] != PLUGIN:
                raise ObjectCacheError('%s holds %r outside %s/: not the Redis Object Cache plugin'
                                       % (path, name[:200], PLUGIN))
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ObjectCacheError('%s holds a symbolic link (%s)' % (path, name[:200]))
        try:
            head = zf.read(PLUGIN + '/redis-cache.php')[:8192].decode('utf-8', 'replace')
            dropin = zf.read(PLUGIN + '/includes/object-cache.php')
        except KeyError as exc:
            raise ObjectCacheError('%s is not the Redis Object Cache plugin: %s' % (path, exc)) from None
    m = VERSION_RE.search(head)
    if not m:
        raise ObjectCacheError('%s: redis-cache.php names no Version' % path)
    return m.group(1), dropin


def plugin_version(tree):
    try:
        with open(os.path.join(tree, 'wp-content', 'plugins', PLUGIN, 'redis-cache.php'), 'rb') as f:
            m = VERSION_RE.search(f.read(8192).decode('utf-8', 'replace'))
    except (IOError, OSError):
        return None
    return m.group(1) if m else None


def dropin_of(tree):
    try:
        with open(os.path.join(tree, DROPIN), 'rb') as f:
            return f.read()
    except (IOError, OSError):
        return None


def wanted(live, state, version, dropin):
    if state == 'disabled':
        return dropin_of(live) is None
    return plugin_version(live) == version and dropin_of(live) == dropin


def build(module, live, final, plugin_data, state, dropin):
    tmp = os.path.join(os.path.dirname(final), '.build-%s' % os.path.basename(final))
    if os.path.lexists(tmp):
        shutil.rmtree(tmp)
    try:
        module.run_command(['cp', '-a', '--', live, tmp], check_rc=True)
        if state == 'enabled':
            plugins = os.path.join(tmp, 'wp-content', 'plugins')
            if os.path.lexists(os.path.join(plugins, PLUGIN)):
                shutil.rmtree(os.path.join(plugins, PLUGIN))
            # The checked bytes, not the file again; members checked by read_zip: all under redis-cache/.
            with zipfile.ZipFile(io.BytesIO(plugin_data)) as zf:
                zf.extractall(plugins)
            with open(os.path.join(tmp, DROPIN), 'wb') as f:
                f.write(dropin)
        elif os.path.lexists(os.path.join(tmp, DROPIN)):
            os.unlink(os.path.join(tmp, DROPIN))
        # As a deploy leaves a release: root's, read-only for the environment's PHP.
        module.run_command(['chown', '-R', '-h', 'root:root', tmp], check_rc=True)
        module.run_command(['chmod', '-R', 'u=rwX,go=rX', tmp], check_rc=True)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main():
    spec = dict(
        state=dict(type='str', choices=['enabled', 'disabled'], default='enabled'),
        release=dict(type='str', required=True),
        plugin_zip=dict(type='path'),
        plugin_sha256=dict(type='str'),
    )

    def check(params, names):
        if not valid_release(params['release']):
            raise ValueError('invalid release name %r' % params['release'])
        if params['state'] == 'enabled' and not params['plugin_zip']:
            raise ValueError('state=enabled needs plugin_zip')
        if params['state'] == 'enabled' and not SHA256_RE.match((params['plugin_sha256'] or '').lower()):
            raise ValueError('state=enabled needs plugin_sha256, 64 hex digits')

    module, names = env_module(spec, check=check)
    p = module.params
    try:
        version, dropin, data = '', None, None
        if p['state'] == 'enabled':
            data = read_pinned(p['plugin_zip'], p['plugin_sha256'])
            version, dropin = read_zip(p['plugin_zip'], data)
        current = names['current']
        if not os.path.islink(current):
            raise ObjectCacheError('%s does not point at a release' % current)
        live = os.path.realpath(current)
        final = os.path.join(names['releases'], p['release'])
        if os.path.isdir(final):  # a retried job: releases are immutable, env_release's checks verify it
            module.exit_json(changed=False, release=p['release'], version=version)
        if wanted(live, p['state'], version, dropin):
            module.exit_json(changed=False, release='', version=version)
        if not module.check_mode:
            build(module, live, final, data, p['state'], dropin)
        module.exit_json(changed=True, release=p['release'], version=version)
    except ObjectCacheError as exc:
        module.fail_json(msg=str(exc))


if __name__ == '__main__':
    main()
