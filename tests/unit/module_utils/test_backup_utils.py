"""module_utils/_backup.py: row counts from a real mysqldump format, fingerprints, verification."""

from __future__ import annotations

import os
import subprocess

from ansible_collections.pressluft.wordpress.plugins.module_utils._backup import (
    TAR_CREATE,
    previous_artifact,
    read_manifest,
    table_rows,
    tree_fingerprint,
    valid_id,
    verify,
    write_json,
)

# (line 7: separators and escaped quotes inside strings must not count as rows)
DUMP = r"""-- MariaDB dump 10.19  Distrib 10.11.14-MariaDB, for debian-linux-gnu (x86_64)
DROP TABLE IF EXISTS `wp_options`;
CREATE TABLE `wp_options` (
  `option_id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  PRIMARY KEY (`option_id`)
) ENGINE=InnoDB;
INSERT INTO `wp_options` VALUES (1,'u','a),(b','yes'),(2,'x','it\'s \\),(\' tricky','no'),(3,'',  'no');
INSERT INTO `wp_options` VALUES (4,'z',NULL,'no');
CREATE TABLE `wp_empty` (
  `id` int
);
CREATE TABLE `odd``name` (
  `id` int
);
INSERT INTO `odd``name` VALUES (1),(2);
INSERT INTO `wp_posts` VALUES
(1,'Hello (world)','it\'s ('),
(2,'a\nb','x'),
(3,'),(','y');
-- Dump completed on 2026-12-02  2:30:00
"""


def test_table_rows_counts_tuples_not_separators_inside_strings():
    assert table_rows(DUMP.splitlines(True)) == {'wp_options': 4, 'wp_empty': 0, 'odd`name': 2, 'wp_posts': 3}


def test_valid_id():
    assert valid_id('20261202T023000Z-5') and valid_id('a') and valid_id('x' * 64)
    for bad in ('', '-a', '.a', 'a/b', 'a b', 'x' * 65, '../x', 'a\n', None, 5):
        assert not valid_id(bad), bad


def test_fingerprint_follows_what_tar_stores(tmp_path):
    up = tmp_path / 'uploads'
    (up / '2026').mkdir(parents=True)
    (up / '2026' / 'a.jpg').write_bytes(b'x' * 10)
    first = tree_fingerprint(str(tmp_path), 'uploads')
    assert tree_fingerprint(str(tmp_path), 'uploads') == first
    os.utime(up / '2026' / 'a.jpg', ns=(1, 1))
    touched = tree_fingerprint(str(tmp_path), 'uploads')
    assert touched != first
    os.chmod(up / '2026' / 'a.jpg', 0o600)
    assert tree_fingerprint(str(tmp_path), 'uploads') != touched


def test_tar_of_an_unchanged_tree_is_byte_identical(tmp_path):
    up = tmp_path / 'uploads'
    up.mkdir()
    for i in range(5):
        (up / f'f{i}').write_bytes(os.urandom(1000))
    outs = []
    for n in range(2):
        out = tmp_path / f'{n}.tar'
        cmd = ['tar', *TAR_CREATE, '--file', str(out), '-C', str(tmp_path), '--', 'uploads']
        subprocess.run(cmd, check=True)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_verify_and_previous_artifact(tmp_path):
    b1 = tmp_path / 'b1'
    b1.mkdir()
    (b1 / 'uploads.tar').write_bytes(b'abc')
    import hashlib
    entry = dict(name='uploads.tar', size=3, sha256=hashlib.sha256(b'abc').hexdigest(), fingerprint='f1')
    manifest = dict(format=2, artifacts=[entry])
    write_json(str(b1 / 'manifest.json'), manifest)
    assert verify(str(b1), manifest) == []
    assert previous_artifact(str(tmp_path), 'b2', 'uploads.tar', 'f1') == (str(b1 / 'uploads.tar'), entry)
    assert previous_artifact(str(tmp_path), 'b2', 'uploads.tar', 'other') == (None, None)
    assert previous_artifact(str(tmp_path), 'b1', 'uploads.tar', 'f1') == (None, None)
    (b1 / 'uploads.tar').write_bytes(b'abd')
    assert verify(str(b1), manifest) == ['uploads.tar: sha256 does not match the manifest']
    (b1 / 'uploads.tar').write_bytes(b'ab')
    assert verify(str(b1), manifest) == ['uploads.tar: size 2, manifest says 3']
    (b1 / 'uploads.tar').unlink()
    assert verify(str(b1), manifest) == ['uploads.tar: missing']
    assert verify(str(b1), dict(format=2, artifacts=[])) == ['the manifest lists no artifacts']


def test_read_manifest_of_a_format_1_backup(tmp_path):
    # Backups written before format 2 called their files 'artefacts': still verified and restorable.
    entry = dict(name='db.sql.gz', size=3, sha256='0' * 64)
    write_json(str(tmp_path / 'manifest.json'), dict(format=1, id='b1', artefacts=[entry]))
    got = read_manifest(str(tmp_path))
    assert got['format'] == 2 and got['artifacts'] == [entry] and 'artefacts' not in got
    write_json(str(tmp_path / 'manifest.json'), dict(format=3, id='b1', artifacts=[entry]))
    assert read_manifest(str(tmp_path)) is None
