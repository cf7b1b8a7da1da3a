# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WordPress version of a core archive, read in-process (a command task costs a module run)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import tarfile

from ansible.errors import AnsibleFilterError

VERSION_RE = re.compile(r"\$wp_version\s*=\s*'([^']+)'")
MEMBER_RE = re.compile(r'^(\./)?([^/]+/)?wp-includes/version\.php$')


def wp_archive_version(path):
    """$wp_version from wp-includes/version.php in the archive; '' when the archive has none."""
    try:
        with tarfile.open(str(path), 'r|*') as archive:  # streaming: one pass, no index of members
            for member in archive:
                if member.isfile() and MEMBER_RE.match(member.name):
                    text = archive.extractfile(member).read(65536).decode('utf-8', 'replace')
                    found = VERSION_RE.search(text)
                    return found.group(1) if found else ''
    except (OSError, tarfile.TarError) as exc:
        msg = 'pressluft.wordpress.wp_archive_version: cannot read %s: %s' % (path, exc)
        raise AnsibleFilterError(msg) from None
    return ''


class FilterModule(object):
    def filters(self):
        return {'wp_archive_version': wp_archive_version}
