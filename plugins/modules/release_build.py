#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: release_build
short_description: Turn an unpacked source into a Pressluft release directory
description:
  - The last step of a release build (role C(pressluft.wordpress.env_release)). The source has been
    unpacked, checked out or copied into O(build); this module finds the WordPress tree in it (its top,
    or its single top directory), drops C(.git), links the environment's shared C(wp-config.php) and
    C(wp-content/uploads) into it, makes it owned by root and read-only for everyone else
    (C(chown -R -h root:root), C(chmod -R u=rwX,go=rX); links are not followed), and renames it to
    O(dest). O(dest) is therefore complete or absent.
  - One module instead of a task per step, because each task is an SSH round trip and every deploy,
    update, promotion and import builds a release.
  - When O(dest) exists already (a retried job whose build finished), nothing changes.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
options:
  build:
    description:
      - The build directory holding the source, beside O(dest) on the same filesystem.
      - Removed at the end.
    type: path
    required: true
  dest:
    description: The release directory to create (C(releases/<release>) of the environment).
    type: path
    required: true
  wp_config:
    description: The environment's C(wp-config.php), which C(wp-config.php) of the release links to.
    type: path
    required: true
  uploads:
    description: The environment's shared uploads, which C(wp-content/uploads) of the release links to.
    type: path
    required: true
  remove:
    description: Further paths to remove once the release is in place (such as the copied archive).
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    description: Not supported; the role does not build releases in check mode.
    support: none
  diff_mode:
    description: Not supported.
    support: none
notes:
  - A non-empty C(wp-content/uploads) in the source fails the build, because uploads are data and live in
    the environment's shared directory.
seealso:
  - module: pressluft.wordpress.release_switch
'''

EXAMPLES = r'''
- name: Make the unpacked source release r42 of shop/production
  pressluft.wordpress.release_build:
    build: /var/www/sites/shop/production/releases/.build-r42
    dest: /var/www/sites/shop/production/releases/r42
    wp_config: /var/www/sites/shop/production/shared/wp-config.php
    uploads: /var/www/sites/shop/production/shared/uploads
'''

RETURN = r'''
tree:
  description: Where the WordPress tree was found, relative to O(build) (C(.) for its top).
  returned: changed
  type: str
  sample: wordpress
'''

import os
import shutil
import stat

from ansible.module_utils.basic import AnsibleModule

NO_TREE = 'the source holds no WordPress tree (wp-load.php) at its top or in its single top directory'


def find_tree(build):
    """The WordPress tree: the source's top, or its only non-hidden top directory."""
    if os.path.isfile(os.path.join(build, 'wp-load.php')):
        return build
    dirs = [e.path for e in os.scandir(build)
            if not e.name.startswith('.') and e.is_dir(follow_symlinks=False)]
    if len(dirs) == 1 and os.path.isfile(os.path.join(dirs[0], 'wp-load.php')):
        return dirs[0]
    return None


def remove(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def link(target, path):
    """Point `path` at `target`, replacing a file, a link or an empty directory."""
    if os.path.isdir(path) and not os.path.islink(path):
        os.rmdir(path)  # OSError when not empty: the caller says why
    elif os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)


def lock_down(tree):
    """chown -R -h root:root and chmod -R u=rwX,go=rX, without following links."""
    for top, dirs, files in os.walk(tree):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            os.lchown(path, 0, 0)
            if stat.S_ISLNK(st.st_mode):
                continue
            executable = stat.S_ISDIR(st.st_mode) or st.st_mode & 0o111
            os.chmod(path, 0o755 if executable else 0o644)
    os.chown(tree, 0, 0)
    os.chmod(tree, 0o755)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            build=dict(type='path', required=True),
            dest=dict(type='path', required=True),
            wp_config=dict(type='path', required=True),
            uploads=dict(type='path', required=True),
            remove=dict(type='list', elements='path', default=[]),
        ),
        supports_check_mode=False,
    )
    p = module.params
    if os.path.lexists(p['dest']):
        module.exit_json(changed=False)
    tree = find_tree(p['build']) if os.path.isdir(p['build']) else None
    if tree is None:
        module.fail_json(msg=NO_TREE)
    remove(os.path.join(tree, '.git'))
    content = os.path.join(tree, 'wp-content')
    if os.path.islink(content):  # the uploads link would be written wherever it points
        module.fail_json(msg='wp-content in the source is a symbolic link; it must be a directory')
    if not os.path.isdir(content):
        os.mkdir(content, 0o755)
    link(p['wp_config'], os.path.join(tree, 'wp-config.php'))
    try:
        link(p['uploads'], os.path.join(content, 'uploads'))
    except OSError:
        module.fail_json(msg='the source has files in wp-content/uploads: uploads are data and live in the '
                             "environment's shared uploads (pressluft env sync or import), not in a release")
    lock_down(tree)
    os.rename(tree, p['dest'])
    for path in [p['build']] + p['remove']:
        remove(path)
    module.exit_json(changed=True, tree=os.path.relpath(tree, p['build']))


if __name__ == '__main__':
    main()
