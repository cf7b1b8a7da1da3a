#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: wp_site
short_description: Install WordPress core into a Pressluft site environment
version_added: "1.0.0"
description:
  - Ensures WordPress core O(version) is unpacked in the release directory
    C(/var/www/sites/<site>/<env>/releases/<release>), with C(wp-config.php) linked to
    C(shared/wp-config.php) and C(wp-content/uploads) linked to C(shared/uploads).
  - A new release is unpacked into a temporary directory and renamed into place, so a release
    directory is either complete or absent. Existing releases are never unpacked again.
  - Points C(current) at the release only when C(current) does not exist yet (the first install);
    later switches are deployments and belong to the release switch.
  - Then runs C(wp core install) through WP-CLI as the environment's user (never as root), which installs
    or reports an existing install (one WordPress boot instead of two with C(wp core is-installed) first;
    check mode and a run without the install parameters ask C(wp core is-installed) instead); the admin
    password reaches WP-CLI on standard input (C(--prompt=admin_password)), never on its command line.
    Finally makes the C(siteurl) and C(home) options of an existing install equal O(url).
  - The site title is used only by the first install; later title changes are content and are left alone.
  - O(state=absent) removes the environment's tree C(/var/www/sites/<site>/<env>) (database, users
    and services are removed by their own modules).
  - The environment's user, its tree and C(shared/wp-config.php) must exist (role C(site_env)).
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
  - pressluft.wordpress.wp_cli
attributes:
  check_mode:
    description:
      - Reports what would change without unpacking, linking or installing.
      - Reads the database through WP-CLI when a release already exists.
    support: full
  diff_mode:
    description: Returns the release, C(current), installed state, C(siteurl) and C(home) before and after.
    support: full
  platform:
    description: Debian nodes with PHP, WP-CLI and C(runuser).
    support: full
    platforms: debian
options:
  state:
    description: Whether WordPress is installed in the environment, or the environment's tree is removed.
    type: str
    choices: [present, absent]
    default: present
  version:
    description:
      - WordPress version, such as C(6.1.9); the unpacked C(wp-includes/version.php) must report it.
      - Required with O(state=present).
    type: str
  release:
    description: Name of the release directory; defaults to O(version).
    type: str
  src:
    description:
      - WordPress core on the node, as a C(.tar.gz), C(.tgz), C(.tar.xz) or C(.tar) archive (with a
        top-level C(wordpress/) directory like wordpress.org archives) or as a directory.
      - Needed only when the release directory does not exist yet.
    type: path
  download_url:
    description:
      - URL of a WordPress core archive, downloaded on the node when the release does not exist yet.
      - Requires O(checksum). Mutually exclusive with O(src).
    type: str
  checksum:
    description:
      - Checksum of the O(download_url) archive, as C(sha256:<hex>), C(sha1:<hex>) or plain SHA-256 hex.
      - wordpress.org publishes a SHA-1 beside each release archive (C(<archive URL>.sha1)).
    type: str
  url:
    description:
      - Site URL, such as C(https://example.com); C(siteurl) and C(home) are set to it.
      - Required with O(state=present).
    type: str
  title:
    description: Site title for the first install.
    type: str
  admin_user:
    description: Login of the administrator created by the first install.
    type: str
  admin_email:
    description: E-mail address of that administrator.
    type: str
  admin_password:
    description: Password of that administrator; required when WordPress is not installed yet.
    type: str
notes:
  - Release files are owned by root and readable by all (the environment tree's own permissions
    keep other users out), so PHP running as the environment's user cannot change core.
'''

EXAMPLES = r'''
- name: Install WordPress 6.1.9 from an archive copied to the node
  pressluft.wordpress.wp_site:
    site: shop
    env: production
    version: "6.1.9"
    src: /var/tmp/wordpress-6.1.9.tar.gz
    url: https://shop.example.com
    title: Shop
    admin_user: owner
    admin_email: owner@example.com
    admin_password: "{{ shop_admin_password }}"
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"

- name: Install from wordpress.org with a pinned checksum
  pressluft.wordpress.wp_site:
    site: blog
    version: "6.8.1"
    download_url: https://wordpress.org/wordpress-6.8.1.tar.gz
    checksum: "sha256:{{ blog_wordpress_sha256 }}"
    url: https://blog.example.com
    title: Blog
    admin_user: editor
    admin_email: editor@example.com
    admin_password: "{{ blog_admin_password }}"

- name: Remove the staging environment's files
  pressluft.wordpress.wp_site:
    site: shop
    env: staging
    state: absent
'''

RETURN = r'''
version:
  description: WordPress version of the release.
  returned: state is present
  type: str
  sample: "6.1.9"
url:
  description: The site URL (C(siteurl) and C(home)).
  returned: state is present
  type: str
  sample: https://shop.example.com
installed:
  description: Whether WordPress is installed after the task (in check mode, whether it would be).
  returned: state is present
  type: bool
release:
  description: Path of the release directory.
  returned: state is present
  type: str
  sample: /var/www/sites/shop/production/releases/6.1.9
current:
  description: Path C(current) points at after the task.
  returned: state is present
  type: str
  sample: /var/www/sites/shop/production/releases/6.1.9
root:
  description: The environment's tree.
  returned: always
  type: str
  sample: /var/www/sites/shop/production
'''

import os
import re

from ansible_collections.pressluft.wordpress.plugins.module_utils._env import (
    WP_CLI_ARGSPEC,
    check_run_as,
    env_module,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import SITES_ROOT
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_cli import WpCli, WpCliError
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_release import (
    ReleaseError,
    download,
    ensure_release,
    release_version,
)

RELEASE_RE = re.compile(r'^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$')
URL_RE = re.compile(r'^https?://[^\s/?#]+(/[^\s?#]*)?$')
CHECKSUM_RE = re.compile(r'^(?:(sha256):)?([0-9a-fA-F]{64})$|^(sha1):([0-9a-fA-F]{40})$')
# What `wp core install` prints (WP-CLI 2.x, docs/wp-cli.md): the install happened, or there was one already.
INSTALLED_NOW = 'Success: WordPress installed successfully.'
ALREADY_INSTALLED = 'WordPress is already installed.'


def is_installed(wp):
    rc, _out, err = wp.run(['core', 'is-installed'], check=False)
    if rc != 0 and err.strip():
        # is-installed is silent; anything on stderr is a real failure (database down, bad config).
        raise WpCliError('wp core is-installed failed: %s' % err.strip())
    return rc == 0


def _check(p, names):
    """Refuse bad values and fill the defaults derived from others."""
    if p['state'] == 'absent':
        return
    for key in ('version', 'url'):
        if not p[key]:
            raise ValueError('%s is required with state=present' % key)
    p['release'] = p['release'] or p['version']
    for key in ('version', 'release'):
        if not RELEASE_RE.match(p[key]):
            raise ValueError('invalid %s %r: use letters, digits, dots, dashes, plus signs, underscores'
                             % (key, p[key]))
    if not URL_RE.match(p['url']):
        raise ValueError('invalid url %r: use http(s)://host[:port][/path]' % p['url'])
    p['url'] = p['url'].rstrip('/')
    if p['download_url'] and not (p['checksum'] and CHECKSUM_RE.match(p['checksum'])):
        raise ValueError('download_url needs checksum as sha256:<64 hex digits> or sha1:<40 hex digits>')
    check_run_as(p, names)


def _absent(module, names):
    root = names['root']
    result = dict(changed=False, root=root)
    if not os.path.lexists(root):
        module.exit_json(**result)
    real = os.path.realpath(root)
    if not real.startswith(SITES_ROOT + '/') or real != root:
        module.fail_json(msg='refusing to remove %s: it resolves to %s, outside %s'
                         % (root, real, SITES_ROOT), **result)
    result['changed'] = True
    result['diff'] = dict(before=dict(root='present'), after=dict(root='absent'))
    if not module.check_mode:
        module.run_command(['rm', '-rf', '--one-file-system', '--', root], check_rc=True)
    module.exit_json(**result)


def _link_current(module, names, release_dir):
    current = names['current']
    if os.path.islink(current):
        return os.path.join(os.path.dirname(current), os.readlink(current)), False
    if os.path.exists(current):
        module.fail_json(msg='%s exists and is not a symlink' % current)
    if not module.check_mode:
        tmp = '%s.tmp-%d' % (current, os.getpid())
        os.symlink(release_dir, tmp)
        os.rename(tmp, current)  # atomic replace: no moment without a current
    return release_dir, True


def _present(module, names):
    p = module.params
    release_dir = os.path.join(names['releases'], p['release'])
    result = dict(changed=False, root=names['root'], release=release_dir, version=p['version'], url=p['url'])
    before, after = {}, {}
    for path in (names['root'], names['releases']):
        if not os.path.isdir(path) and not module.check_mode:
            module.fail_json(msg='%s does not exist: create the environment first (role site_env)' % path,
                             **result)

    # 1. The release directory.
    have = os.path.isdir(release_dir)
    before['release'] = release_dir if have else None
    if have:
        found = release_version(release_dir)
        if found != p['version']:
            module.fail_json(msg='%s holds WordPress %s, not %s' % (release_dir, found, p['version']),
                             **result)
    elif not (p['src'] or p['download_url']):
        module.fail_json(msg='%s does not exist: give src or download_url to unpack WordPress %s'
                         % (release_dir, p['version']), **result)
    elif not module.check_mode:
        src = p['src']
        try:
            if not src:
                algorithm, _sep, digest = p['checksum'].rpartition(':')
                src = download(module, p['download_url'], algorithm or 'sha256', digest.lower())
            ensure_release(module, src, release_dir, p['version'], names)
        except ReleaseError as exc:
            module.fail_json(msg=str(exc), **result)
    after['release'] = release_dir
    result['changed'] |= not have

    # 2. current -> the release, on the first install only.
    current, linked = _link_current(module, names, release_dir)
    before['current'] = None if linked else current
    after['current'] = result['current'] = current
    result['changed'] |= linked

    # 3. The database install and the site URL, through WP-CLI as the environment's user.
    # In check mode a release that is not unpacked yet is judged through the one current points at.
    wp_path = release_dir if os.path.isdir(release_dir) else current
    if not os.path.isdir(wp_path) or not os.path.exists(names['wp_config']):
        if not module.check_mode:
            module.fail_json(msg='%s does not exist: write it first (role site_env)' % names['wp_config'],
                             **result)
        # Check mode on a fresh environment: everything would be done.
        result.update(installed=True, changed=True)
        before.update(installed=False)
        after.update(installed=True, siteurl=p['url'], home=p['url'])
        result['diff'] = dict(before=before, after=after)
        module.exit_json(**result)
    try:
        _install(module, WpCli(module, p['run_as'], wp_path), result, before, after)
    except WpCliError as exc:
        module.fail_json(msg=str(exc), **result)


def _install(module, wp, result, before, after):
    p = module.params
    missing = [k for k in ('title', 'admin_user', 'admin_email', 'admin_password') if not p[k]]
    if module.check_mode or missing:
        installed = is_installed(wp)
        if not installed and missing:
            module.fail_json(msg='WordPress is not installed yet; the install needs %s' % ', '.join(missing),
                             **result)
    else:
        # core install checks is_blog_installed() itself: one WordPress boot instead of two.
        _rc, out, err = wp.run(['core', 'install', '--url=%s' % p['url'], '--title=%s' % p['title'],
                                '--admin_user=%s' % p['admin_user'], '--admin_email=%s' % p['admin_email'],
                                '--prompt=admin_password', '--skip-email'], data=p['admin_password'])
        out += err  # the notice is a log line (stdout); accept it on stderr too, as a warning would be
        if INSTALLED_NOW in out:
            installed = False
        elif ALREADY_INSTALLED in out:
            installed = True
        else:
            module.fail_json(msg='wp core install printed neither %r nor %r: %s'
                             % (INSTALLED_NOW, ALREADY_INSTALLED, out.strip()[:500]), **result)
    before['installed'] = installed
    result['changed'] |= not installed
    after['installed'] = result['installed'] = True
    for key in ('siteurl', 'home'):
        # core install sets both to --url: reading them back would boot WordPress twice more for nothing.
        value = wp.out(['option', 'get', key]).strip().rstrip('/') if installed else None
        before[key] = value
        after[key] = p['url']
        if installed and value != p['url']:
            result['changed'] = True
            if not module.check_mode:
                wp.run(['option', 'update', key, p['url']])
    result['diff'] = dict(before=before, after=after)
    module.exit_json(**result)


def main():
    argument_spec = dict(
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        version=dict(type='str'),
        release=dict(type='str'),
        src=dict(type='path'),
        download_url=dict(type='str'),
        checksum=dict(type='str'),
        url=dict(type='str'),
        title=dict(type='str'),
        admin_user=dict(type='str'),
        admin_email=dict(type='str'),
        admin_password=dict(type='str', no_log=True),
    )
    argument_spec.update(WP_CLI_ARGSPEC)
    module, names = env_module(argument_spec, check=_check,
                               mutually_exclusive=[('src', 'download_url')],
                               required_by={'download_url': 'checksum'})
    if module.params['state'] == 'absent':
        _absent(module, names)
    _present(module, names)


if __name__ == '__main__':
    main()
