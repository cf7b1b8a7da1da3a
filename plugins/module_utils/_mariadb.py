# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An environment's database and its user, converged as root over MariaDB's socket by env_tree.

What community.mysql's mysql_db and mysql_user did in site_env (a database created utf8mb4, a user at
localhost with the password of the secrets file and ALL on its own database only), in the module run that
already holds the secrets: the password never leaves the node, and an environment job starts two modules
less (~1 s each). Statements go to the mysql client on stdin, never on its command line; names come from
env_names (letters, digits, _) and passwords never hold a quote or a backslash (refused).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

ARGSPEC = dict(
    socket=dict(type='path', default='/run/mysqld/mysqld.sock'),
    encoding=dict(type='str', default='utf8mb4'),
    collation=dict(type='str', default='utf8mb4_unicode_ci'),
)


class DatabaseError(Exception):
    pass


class MariaDB(object):
    def __init__(self, module, socket, secret):
        self.module = module
        self.secret = secret  # the client may quote a statement back in its error: never the password
        self.argv = [module.get_bin_path('mysql', required=True), '--protocol=socket', '--socket=%s' % socket,
                     '--batch', '--raw', '--skip-column-names']

    def sql(self, statements, what):
        rc, out, err = self.module.run_command(self.argv, data=statements, binary_data=False)
        if rc != 0:
            err = err.strip()[-1000:].replace(self.secret, '********')
            raise DatabaseError('MariaDB refused %s (rc=%d): %s' % (what, rc, err))
        return out


def _literal(value, what):
    if any(c in value for c in '\'\\\n\0'):
        raise DatabaseError('%s holds a quote, a backslash or a newline: fix the secrets file' % what)
    return "'%s'" % value


def ensure(module, spec, db, user, password):
    """Converge database db and user@localhost (password, ALL on db only); return what changed (or would,
    in check mode)."""
    m = MariaDB(module, spec['socket'], password)
    for name, value in (('encoding', spec['encoding']), ('collation', spec['collation'])):
        if not value.replace('_', '').isalnum():
            raise DatabaseError('invalid %s %r' % (name, value))
    pw = _literal(password, 'the database password of %s' % user)
    account = "'%s'@'localhost'" % user
    # `_` is a wildcard in grants: escaped, the user gets its own database only.
    grant = 'GRANT ALL PRIVILEGES ON `%s`.* TO `%s`@`localhost`' % (db.replace('_', '\\_'), user)
    exists, has_user, pw_ok = m.sql(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '%s';"
        "SELECT COUNT(*) FROM mysql.user WHERE User = '%s' AND Host = 'localhost';"
        "SELECT COUNT(*) FROM mysql.user WHERE User = '%s' AND Host = 'localhost' "
        "AND authentication_string = PASSWORD(%s);" % (db, user, user, pw), 'reading the database').split()
    grants = []
    if has_user != '0':
        grants = [g for g in m.sql('SHOW GRANTS FOR %s;' % account, 'reading the grants').splitlines()
                  if g.strip() and not g.startswith('GRANT USAGE ON *.* TO ')]
    todo, changes = [], []
    if exists == '0':
        todo.append('CREATE DATABASE `%s` CHARACTER SET %s COLLATE %s;'
                    % (db, spec['encoding'], spec['collation']))
        changes.append('database %s' % db)
    if has_user == '0':
        todo.append('CREATE USER %s IDENTIFIED BY %s;' % (account, pw))
        changes.append('database user %s' % user)
    elif pw_ok == '0':
        todo.append('ALTER USER %s IDENTIFIED BY %s;' % (account, pw))
        changes.append('database password of %s' % user)
    if grants != [grant]:
        if grants:
            todo.append('REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s;' % account)
        todo.append('%s;' % grant.replace('`%s`@`localhost`' % user, account))
        changes.append('database grants of %s' % user)
    if todo and not module.check_mode:
        m.sql(''.join(todo), 'creating %s and its user' % db)
    return changes
